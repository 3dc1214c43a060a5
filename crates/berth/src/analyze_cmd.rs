//! `berth analyze`: where the boot's time went, from the boot timeline that init and sysinit
//! record ([`berth_runtime::timeline`]): each stage and service, longest first (like
//! `systemd-analyze blame`), the chain that led to User Docker being ready, a JSON form for
//! programs (the benchmark) and an SVG chart (like `systemd-analyze plot`).

use crate::service_cmd::Format;
use berth_runtime::timeline::{self, Bar, Kind, Timeline};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Args)]
#[command(
    long_about = "Show how long each boot stage and each system service took, from the boot \
                  timeline that init and the service bring-up record \
                  (/run/berth/boot-timeline.jsonl; times are seconds since the kernel started).\n\n\
                  Stages: kernel (until init runs), stage1 (initramfs), stage2 (real root until \
                  System Docker starts), system-docker (until its API answers), user-docker \
                  (from the docker service being up until its API answers). A service runs from \
                  the start of its bring-up until it is ready: healthy where it has a \
                  healthcheck, started where not, finished for a one-shot.",
    after_help = "Examples:\n  berth analyze                  blame list and critical chain\n  \
                  berth analyze --svg boot.svg   draw the boot as a chart\n  \
                  berth analyze --format json    the same data for programs"
)]
pub struct AnalyzeArgs {
    /// Output format: `text` (blame list and critical chain) or `json`
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also write the boot as an SVG chart to FILE (`-` for standard output)
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Read this timeline instead of this boot's
    #[arg(long, value_name = "FILE", default_value = timeline::BOOT_TIMELINE, hide_default_value = true)]
    timeline: PathBuf,
}

pub fn main(args: AnalyzeArgs) -> i32 {
    let t = match Timeline::read(&args.timeline) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("berth analyze: {e}");
            return 1;
        }
    };
    if let Some(file) = &args.svg {
        let svg = svg(&t);
        let written = if file == Path::new("-") {
            print!("{svg}");
            Ok(())
        } else {
            std::fs::write(file, svg)
        };
        if let Err(e) = written {
            eprintln!("berth analyze: cannot write {}: {e}", file.display());
            return 1;
        }
        if file == Path::new("-") {
            return 0;
        }
    }
    match args.format {
        Format::Json => match serde_json::to_string(&t) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("berth analyze: {e}");
                return 1;
            }
        },
        Format::Text => print!("{}", text(&t)),
    }
    0
}

fn label(bar: &Bar) -> String {
    match bar.kind {
        Kind::Stage => format!("{} (stage)", bar.name),
        Kind::Service => bar.name.clone(),
    }
}

/// The blame list, the critical chain and the services that never got ready.
pub fn text(t: &Timeline) -> String {
    let mut out = String::new();
    match t.user_docker_ready {
        Some(at) => {
            let _ = writeln!(out, "User Docker ready {at:.2}s after the kernel started.");
        }
        None => {
            let _ = writeln!(out, "User Docker has not been ready in this boot (yet).");
        }
    }
    let _ = writeln!(out, "\nTime taken, longest first:");
    for bar in t.blame() {
        let _ = writeln!(out, "{:>9.3}s {}", bar.duration().unwrap_or(0.0), label(bar));
    }
    let chain = t.critical_chain(timeline::USER_DOCKER);
    if !chain.is_empty() {
        let _ = writeln!(out, "\nCritical chain (each waited for the one above):");
        for bar in chain {
            let _ = writeln!(
                out,
                "  {:<24} @{:.3}s +{:.3}s",
                label(bar),
                bar.start,
                bar.duration().unwrap_or(0.0)
            );
        }
    }
    let waiting: Vec<&Bar> = t.stages.iter().filter(|b| b.ready.is_none()).collect();
    if !waiting.is_empty() {
        let _ = writeln!(out, "\nNever ready (failed, unhealthy or still starting):");
        for bar in waiting {
            let _ = writeln!(out, "  {} (began @{:.3}s)", label(bar), bar.start);
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The boot drawn as an SVG: a time axis in seconds, one bar per stage and service in the
/// order they began, each labelled with its name and duration.
pub fn svg(t: &Timeline) -> String {
    const ROW: f64 = 22.0;
    const TOP: f64 = 40.0;
    const LEFT: f64 = 10.0;
    const PX_PER_S: f64 = 40.0;
    let mut bars: Vec<&Bar> = t.stages.iter().collect();
    bars.sort_by(|a, b| a.start.total_cmp(&b.start));
    let end = bars
        .iter()
        .map(|b| b.ready.unwrap_or(b.start))
        .chain(t.user_docker_ready)
        .fold(1.0_f64, f64::max)
        .ceil();
    let width = LEFT * 2.0 + end * PX_PER_S + 220.0;
    let height = TOP + ROW * bars.len() as f64 + 20.0;
    let x = |s: f64| LEFT + s * PX_PER_S;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = match t.user_docker_ready {
        Some(at) => format!("Berth boot: User Docker ready at {at:.2}s"),
        None => "Berth boot: User Docker not ready".to_string(),
    };
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="16" font-size="14">{}</text>"#,
        escape(&title)
    );
    let mut second = 0.0;
    while second <= end {
        let _ = writeln!(
            out,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2:.1}" stroke="#ddd"/><text x="{0:.1}" y="{3}" fill="#666">{4}s</text>"##,
            x(second),
            TOP - 8.0,
            height - 20.0,
            TOP - 12.0,
            second
        );
        second += if end > 60.0 { 10.0 } else { 5.0 };
    }
    for (row, bar) in bars.iter().enumerate() {
        let y = TOP + row as f64 * ROW;
        let (fill, until) = match (bar.kind, bar.ready) {
            (Kind::Stage, Some(r)) => ("#4a7fb5", r),
            (Kind::Service, Some(r)) => ("#5aa469", r),
            (_, None) => ("#d9534f", end),
        };
        let w = ((until - bar.start) * PX_PER_S).max(1.0);
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{fill}"><title>{}</title></rect>"#,
            x(bar.start),
            y,
            ROW - 6.0,
            escape(&bar.name)
        );
        if let (Some(started), Some(_)) = (bar.started, bar.ready) {
            // The part after the container started: waiting for its healthcheck.
            let _ = writeln!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#a8d5b0"/>"##,
                x(started),
                y,
                ((until - started) * PX_PER_S).max(0.0),
                ROW - 6.0
            );
        }
        let what = match bar.duration() {
            Some(d) => format!("{} {d:.2}s", bar.name),
            None => format!("{} (never ready)", bar.name),
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x(until) + 4.0,
            y + ROW - 10.0,
            escape(&what)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::timeline::{Event, Record};

    fn boot() -> Timeline {
        let r = |at: f64, event: Event| Record { at, event };
        let n = |s: &str| s.to_string();
        Timeline::from_records(&[
            r(1.9, Event::Stage1Start),
            r(3.0, Event::Stage1Done),
            r(3.4, Event::SystemDockerStart),
            r(6.0, Event::SystemDockerReady),
            r(6.0, Event::ServiceStart { name: n("a<b&c") }),
            r(7.0, Event::ServiceStarted { name: n("a<b&c") }),
            r(9.0, Event::ServiceReady { name: n("a<b&c") }),
            r(9.0, Event::ServiceStart { name: n("docker") }),
            r(9.5, Event::ServiceReady { name: n("docker") }),
            r(9.5, Event::ServiceStart { name: n("ntp") }),
            r(10.0, Event::ServiceFailed { name: n("ntp") }),
            r(21.3, Event::UserDockerReady),
        ])
    }

    #[test]
    fn json_has_the_fields_the_benchmark_reads() {
        let json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&boot()).unwrap()).unwrap();
        assert_eq!(json["user_docker_ready"], 21.3);
        let first = &json["stages"][0];
        assert_eq!(
            first,
            &serde_json::json!({"name": "kernel", "kind": "stage", "start": 0.0, "ready": 1.9})
        );
        let ntp = json["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "ntp")
            .unwrap();
        assert_eq!(ntp["kind"], "service");
        assert!(ntp["ready"].is_null());
        assert_eq!(json.as_object().unwrap().len(), 2);
    }

    #[test]
    fn text_blames_the_longest_first_and_shows_the_chain() {
        let out = text(&boot());
        assert!(out.starts_with("User Docker ready 21.30s"), "{out}");
        let blame: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with("Time taken"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(blame[0].ends_with("user-docker (stage)"), "{out}");
        assert!(blame[1].ends_with("a<b&c"), "{out}");
        assert!(out.contains("Critical chain"), "{out}");
        assert!(out.contains("  ntp (began @9.500s)"), "{out}");
    }

    #[test]
    fn svg_is_well_formed_with_a_bar_and_label_per_stage() {
        let t = boot();
        let svg = svg(&t);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let titles: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("title"))
            .filter_map(|n| n.text())
            .collect();
        let names: Vec<&str> = t.stages.iter().map(|b| b.name.as_str()).collect();
        for name in &names {
            assert!(titles.contains(name), "no bar for {name}: {titles:?}");
        }
        let labels: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert!(labels.contains(&"ntp (never ready)"), "{labels:?}");
        assert!(labels.contains(&"a<b&c 3.00s"), "{labels:?}");
    }

    #[test]
    fn a_missing_timeline_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.jsonl");
        let e = Timeline::read(&missing).unwrap_err().to_string();
        assert!(e.contains("none.jsonl"), "{e}");
    }
}
