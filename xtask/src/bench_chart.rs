//! The boot benchmark's chart: one SVG with two bar groups, seconds from QEMU's start to the
//! engine and to ssh being ready, and idle memory, one bar per system, with axes, ticks and
//! each bar's value written on it so the chart reads without the JSON. Plain SVG text: no
//! plotting toolchain on the host.

use std::fmt::Write as _;

/// One system's figures as the chart and the printed table show them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SystemFigures {
    pub name: String,
    pub memory_mib: u32,
    /// QEMU start → `docker info` answers (User Docker for Berth), median seconds.
    pub engine_ready: Option<f64>,
    /// QEMU start → sshd's banner, median seconds.
    pub ssh_ready: Option<f64>,
    /// MemTotal − MemAvailable after the idle wait, MiB.
    pub idle_memory_used_mib: Option<f64>,
    /// Processes after the idle wait.
    pub processes: Option<u32>,
    /// What the system boots from, on the host's disk, MiB.
    pub image_mib: Option<f64>,
}

const WIDTH: f64 = 920.0;
const PANEL_HEIGHT: f64 = 250.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const ENGINE_COLOUR: &str = "#2b6cb0";
const SSH_COLOUR: &str = "#9ac1e8";
const MEMORY_COLOUR: &str = "#c05621";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round axis maximum and tick step above `max`.
fn axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

/// One kind of bar: its CSS class (tests count bars by it), colour, legend and value.
struct Series {
    class: &'static str,
    colour: &'static str,
    legend: &'static str,
    value: fn(&SystemFigures) -> Option<f64>,
}

struct Panel<'a> {
    top: f64,
    title: &'a str,
    unit: &'a str,
    series: &'a [Series],
}

fn panel(out: &mut String, systems: &[SystemFigures], p: &Panel<'_>) {
    let plot_top = p.top + 48.0;
    let plot_bottom = p.top + PANEL_HEIGHT - 40.0;
    let plot_height = plot_bottom - plot_top;
    let plot_width = WIDTH - LEFT - RIGHT;
    let max = systems
        .iter()
        .flat_map(|s| p.series.iter().filter_map(|series| (series.value)(s)))
        .fold(0.0, f64::max);
    let (axis_max, step) = axis(max);
    let y = |v: f64| plot_bottom - v / axis_max * plot_height;
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        p.top + 18.0,
        escape(p.title)
    );
    // Legend, on its own line under the title.
    let mut lx = LEFT;
    for Series { colour, legend, .. } in p.series {
        let _ = writeln!(
            out,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            p.top + 26.0,
            lx + 16.0,
            p.top + 36.0,
            escape(legend)
        );
        lx += 220.0;
    }
    // Y axis, ticks and grid.
    let mut tick = 0.0;
    while tick <= axis_max + step / 2.0 {
        let ty = y(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{}" y2="{ty:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{tick}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0
        );
        tick += step;
    }
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{plot_top}" x2="{LEFT}" y2="{plot_bottom}" stroke="black"/><line x1="{LEFT}" y1="{plot_bottom}" x2="{}" y2="{plot_bottom}" stroke="black"/>"#,
        WIDTH - RIGHT
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
        (plot_top + plot_bottom) / 2.0,
        escape(p.unit)
    );
    // Bars: one group per system.
    let group = plot_width / systems.len().max(1) as f64;
    let bar = (group * 0.7 / p.series.len() as f64).min(60.0);
    for (i, s) in systems.iter().enumerate() {
        let centre = LEFT + group * (i as f64 + 0.5);
        let first = centre - bar * p.series.len() as f64 / 2.0;
        for (
            j,
            Series {
                class, colour, value, ..
            },
        ) in p.series.iter().enumerate()
        {
            let x = first + bar * j as f64;
            let label_x = x + bar / 2.0;
            match value(s) {
                Some(v) => {
                    let top = y(v);
                    let _ = writeln!(
                        out,
                        r#"<rect class="{class}" x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {v}</title></rect><text x="{label_x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{v}</text>"#,
                        bar - 2.0,
                        plot_bottom - top,
                        escape(&s.name),
                        top - 4.0
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        r##"<text x="{label_x:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#777">n/a</text>"##,
                        plot_bottom - 4.0
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            r#"<text x="{centre:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text><text x="{centre:.1}" y="{:.1}" font-size="11" text-anchor="middle">{} MiB guest</text>"#,
            plot_bottom + 16.0,
            escape(&s.name),
            plot_bottom + 30.0,
            s.memory_mib
        );
    }
}

/// The chart of `systems`; `subtitle` says when and how it was measured.
pub fn svg(systems: &[SystemFigures], subtitle: &str) -> String {
    let height = 50.0 + 2.0 * PANEL_HEIGHT + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="17" font-weight="bold">Boot to a ready engine: Berth, the floor and Debian</text>"#
    );
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="40" font-size="11" fill="#444">{}</text>"##,
        escape(subtitle)
    );
    panel(
        &mut out,
        systems,
        &Panel {
            top: 50.0,
            title: "Time from QEMU's start (lower is better)",
            unit: "seconds",
            series: &[
                Series {
                    class: "engine",
                    colour: ENGINE_COLOUR,
                    legend: "engine ready (docker info)",
                    value: |s| s.engine_ready,
                },
                Series {
                    class: "ssh",
                    colour: SSH_COLOUR,
                    legend: "ssh ready",
                    value: |s| s.ssh_ready,
                },
            ],
        },
    );
    panel(
        &mut out,
        systems,
        &Panel {
            top: 50.0 + PANEL_HEIGHT,
            title: "Idle memory used, MemTotal − MemAvailable (lower is better)",
            unit: "MiB",
            series: &[Series {
                class: "memory",
                colour: MEMORY_COLOUR,
                legend: "idle memory used",
                value: |s| s.idle_memory_used_mib,
            }],
        },
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(name: &str, engine: Option<f64>, memory: Option<f64>) -> SystemFigures {
        SystemFigures {
            name: name.into(),
            memory_mib: 1024,
            engine_ready: engine,
            ssh_ready: engine.map(|e| e - 1.0),
            idle_memory_used_mib: memory,
            processes: Some(80),
            image_mib: Some(100.0),
        }
    }

    #[test]
    fn the_chart_parses_as_xml_with_one_bar_per_system_and_figure() {
        let systems = [
            system("Berth from RAM", Some(22.4), Some(180.0)),
            system("Berth <state disk>", Some(20.0), Some(150.0)),
            system("floor", Some(9.3), None),
            system("Debian", Some(64.0), Some(250.0)),
        ];
        let text = svg(&systems, "2026-12-06, TCG & 2 vCPUs");
        let doc = roxmltree::Document::parse(&text).unwrap();
        let bars = |class: &str| {
            doc.descendants()
                .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some(class))
                .count()
        };
        assert_eq!(bars("engine"), 4);
        assert_eq!(bars("ssh"), 4);
        assert_eq!(bars("memory"), 3);
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        for label in [
            "Berth <state disk>",
            "1024 MiB guest",
            "Debian",
            "64",
            "250",
            "seconds",
            "MiB",
            "n/a",
        ] {
            assert!(texts.contains(&label), "{label} missing from {texts:?}");
        }
        // Debian's bar is the tallest of the time panel.
        let height = |name: &str| -> f64 {
            doc.descendants()
                .find(|n| {
                    n.attribute("class") == Some("engine")
                        && n.children()
                            .any(|c| c.text().is_some_and(|t| t.starts_with(name)))
                })
                .and_then(|n| n.attribute("height"))
                .and_then(|h| h.parse().ok())
                .unwrap()
        };
        assert!(height("Debian") > height("Berth from RAM"));
    }

    #[test]
    fn axes_end_on_round_numbers_above_the_largest_value() {
        assert_eq!(axis(64.0), (80.0, 20.0));
        assert_eq!(axis(9.3), (10.0, 2.0));
        assert_eq!(axis(250.0), (250.0, 50.0));
        assert_eq!(axis(0.0), (1.0, 0.2));
    }
}
