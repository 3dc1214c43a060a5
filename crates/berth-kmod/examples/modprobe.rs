//! `cargo run -p berth-kmod --example modprobe -- -d ROOT -S RELEASE -D NAME`: the modprobe
//! command on its own, to try it against a module tree by hand.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(berth_kmod::modprobe_main(&args));
}
