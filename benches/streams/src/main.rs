//! Concurrent streams over loopback: client CPU per token and peak memory per stream of
//! `vllm_client::VllmClient`, side by side with bare reqwest reading bytes, the origin crate
//! `vllm-client` 0.1.2 and async-openai, in one run.
//!
//! ```text
//! streams run [--reps R (5)] [--quick] [--with-100] [--smoke] [--json FILE] [--also LABEL=EXE]…   the matrix
//! streams server <paced|fast|short>                                       the loopback server
//! streams client <reqwest-bytes|ours|ours-mc100|origin|async-openai> <mode> <n> <base-url>
//! ```
//!
//! `run` starts, for every (scenario, client, repetition), a fresh server process and a fresh
//! client process, so each client's CPU and peak RSS are its own and the server's are not
//! counted. `--also LABEL=EXE` adds a row for this workspace's client as another build of
//! this binary runs it (main's, or one built with the `metrics` feature), measured in the same
//! run. See BENCHMARKS.md, "Concurrent streams over loopback".

mod client;
mod measure;
mod run;
mod server;
mod wire;

const USAGE: &str = "usage:
  streams run [--reps R (5)] [--quick] [--with-100] [--smoke] [--json FILE] [--also LABEL=EXE]...
  streams server <paced|fast|short>
  streams client <reqwest-bytes|ours|ours-mc100|origin|async-openai> <paced|fast|short> <n> <base-url>";

fn fail(msg: &str) -> ! {
    eprintln!("{msg}\n{USAGE}");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => match run::Options::parse(&args[1..]) {
            Ok(o) => run::main(o),
            Err(e) => fail(&e),
        },
        Some("server") => {
            let mode = args
                .get(1)
                .and_then(|m| wire::Mode::parse(m))
                .unwrap_or_else(|| fail("server: which mode?"));
            server::main(mode)
        }
        Some("client") => {
            let which = args
                .get(1)
                .and_then(|w| client::Which::parse(w))
                .unwrap_or_else(|| fail("client: which client?"));
            let mode = args
                .get(2)
                .and_then(|m| wire::Mode::parse(m))
                .unwrap_or_else(|| fail("client: which mode?"));
            let n = args
                .get(3)
                .and_then(|n| n.parse().ok())
                .filter(|&n: &usize| n > 0 && n <= 100_000)
                .unwrap_or_else(|| fail("client: how many streams (1..=100000)?"));
            let url = args.get(4).unwrap_or_else(|| fail("client: base URL?"));
            if !url.starts_with("http://127.") && !url.starts_with("http://localhost") {
                fail("client: loopback base URLs only");
            }
            client::main(which, mode, n, url)
        }
        _ => fail("which subcommand?"),
    }
}
