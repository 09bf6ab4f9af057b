//! The matrix: for each scenario and client, a fresh server process and a fresh client
//! process; repeated, medians taken, one markdown report printed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::Which;
use crate::wire::Mode;

/// A client process that has not finished by then is killed and counted as failed.
const CHILD_LIMIT: Duration = Duration::from_secs(360);

pub struct Options {
    pub reps: usize,
    pub quick: bool,
    pub smoke: bool,
    pub with_100: bool,
    pub json_out: Option<String>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            reps: 3,
            quick: false,
            smoke: false,
            with_100: false,
            json_out: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--reps" => {
                    o.reps = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&r| r > 0)
                        .ok_or("--reps needs a positive number")?
                }
                "--quick" => o.quick = true,
                "--smoke" => o.smoke = true,
                "--with-100" => o.with_100 = true,
                "--json" => o.json_out = Some(it.next().ok_or("--json needs a path")?.clone()),
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(o)
    }
}

const PEERS_AND_FLOOR: [Which; 4] = [Which::Bytes, Which::Ours, Which::Origin, Which::AsyncOpenai];

#[derive(Clone, Copy)]
enum Kind {
    /// Ours side by side with the floor and the peers.
    SideBySide,
    /// Ours behind `max_concurrency(100)`: the admission queue.
    Queue,
}

#[derive(Clone, Copy)]
struct Scenario {
    kind: Kind,
    mode: Mode,
    n: usize,
}

impl Scenario {
    fn clients(self) -> &'static [Which] {
        match self.kind {
            Kind::SideBySide => &PEERS_AND_FLOOR,
            Kind::Queue => &[Which::OursLimited],
        }
    }
}

fn scenarios(o: &Options) -> Vec<Scenario> {
    let side = |mode, n| Scenario {
        kind: Kind::SideBySide,
        mode,
        n,
    };
    let queue = |n| Scenario {
        kind: Kind::Queue,
        mode: Mode::Short,
        n,
    };
    if o.smoke {
        return vec![side(Mode::Short, 5), queue(5), queue(50)];
    }
    if o.quick {
        return vec![side(Mode::Paced, 100), side(Mode::Fast, 1), queue(1_000)];
    }
    let mut s = vec![side(Mode::Paced, 1_000), side(Mode::Fast, 1)];
    if o.with_100 {
        s.insert(0, side(Mode::Paced, 100));
    }
    s.push(queue(1_000));
    s.push(queue(10_000));
    s
}

/// Kills (and reaps) the process when dropped: no server outlives the run.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(mode: Mode) -> Result<(Proc, u16), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["server", mode.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn server: {e}"))?;
    let stdout = child.stdout.take().ok_or("server stdout")?;
    let server = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("server port: {e}"))?;
    let port = line
        .trim()
        .parse()
        .map_err(|_| format!("server said {line:?}"))?;
    Ok((server, port))
}

fn run_client(which: Which, mode: Mode, n: usize, port: u16) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{port}/v1");
    let mut child = Proc(
        Command::new(exe)
            .args(["client", which.name(), mode.name(), &n.to_string(), &url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn client: {e}"))?,
    );
    let deadline = Instant::now() + CHILD_LIMIT;
    loop {
        match child.0.try_wait().map_err(|e| e.to_string())? {
            Some(_) => break,
            None if Instant::now() > deadline => {
                return Err(format!(
                    "{} {} {n}: killed after {CHILD_LIMIT:?}",
                    which.name(),
                    mode.name()
                ))
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.0.stdout.take() {
        stdout.read_to_string(&mut out).map_err(|e| e.to_string())?;
    }
    serde_json::from_str(out.trim()).map_err(|_| {
        format!(
            "{} {} {n}: no report (said {out:?})",
            which.name(),
            mode.name()
        )
    })
}

fn measure_once(which: Which, mode: Mode, n: usize) -> Result<Value, String> {
    let (_server, port) = start_server(mode)?;
    let report = run_client(which, mode, n, port);
    // Let the last sockets close before the next pair starts.
    std::thread::sleep(Duration::from_millis(300));
    report
}

/// Median of one numeric field over the repetitions.
fn median(reports: &[Value], field: &str) -> f64 {
    let mut v: Vec<f64> = reports.iter().filter_map(|r| r[field].as_f64()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[derive(Clone, Copy)]
struct Summary {
    user: f64,
    user_min: f64,
    user_max: f64,
    sys: f64,
    peak_kb: f64,
    growth_kb: f64,
    wall: f64,
    tokens: f64,
}

fn summarize(reports: &[Value]) -> Summary {
    // Each repetition's growth (peak − baseline) first, then its median.
    let growth: Vec<Value> = reports
        .iter()
        .map(|r| serde_json::json!({ "g": growth_kb(r) }))
        .collect();
    let users = reports.iter().filter_map(|r| r["cpu_user"].as_f64());
    Summary {
        user: median(reports, "cpu_user"),
        user_min: users.clone().fold(f64::NAN, f64::min),
        user_max: users.fold(f64::NAN, f64::max),
        sys: median(reports, "cpu_sys"),
        peak_kb: median(reports, "max_rss_kb"),
        growth_kb: median(&growth, "g"),
        wall: median(reports, "wall"),
        tokens: median(reports, "tokens"),
    }
}

fn user_cpu(r: &Value) -> f64 {
    r["cpu_user"].as_f64().unwrap_or(f64::NAN)
}

fn total_cpu(r: &Value) -> f64 {
    user_cpu(r) + r["cpu_sys"].as_f64().unwrap_or(f64::NAN)
}

fn peak_kb(r: &Value) -> f64 {
    r["max_rss_kb"].as_f64().unwrap_or(f64::NAN)
}

/// Peak growth (VmHWM − baseline) of one report, in kB.
fn growth_kb(r: &Value) -> f64 {
    peak_kb(r) - r["base_rss_kb"].as_f64().unwrap_or(f64::NAN)
}

/// The median over repetitions of `ours ÷ the smallest peer` with both taken in the same
/// repetition (seconds apart), which cancels much of the shared machine's drift.
fn paired_ratio(ours: &[Value], peers: &[&[Value]], metric: fn(&Value) -> f64) -> f64 {
    let ratios: Vec<Value> = ours
        .iter()
        .filter_map(|o| {
            let best = peers
                .iter()
                .filter_map(|p| p.iter().find(|r| r["rep"] == o["rep"]).map(metric))
                .fold(f64::NAN, f64::min);
            let ratio = metric(o) / best;
            ratio.is_finite().then(|| serde_json::json!({ "x": ratio }))
        })
        .collect();
    median(&ratios, "x")
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target {
        "**met**"
    } else {
        "**missed**"
    }
}

pub fn main(o: Options) -> ! {
    crate::measure::raise_fd_limit();
    let plan = scenarios(&o);
    let mut results: HashMap<(usize, Which), Vec<Value>> = HashMap::new();
    let mut failures = Vec::new();
    for rep in 0..o.reps {
        for (si, s) in plan.iter().enumerate() {
            let clients = s.clients();
            // Rotate the order each repetition, so no client is always first or last.
            for k in 0..clients.len() {
                let which = clients[(k + rep) % clients.len()];
                eprintln!(
                    "rep {}/{}: {} × {} {} …",
                    rep + 1,
                    o.reps,
                    which.name(),
                    s.n,
                    s.mode.name()
                );
                match measure_once(which, s.mode, s.n) {
                    Ok(mut r) => {
                        r["rep"] = rep.into();
                        eprintln!("  {r}");
                        if r["failed"].as_u64() != Some(0) {
                            failures.push(format!("{}: {}", which.name(), r["first_error"]));
                        }
                        results.entry((si, which)).or_default().push(r);
                    }
                    Err(e) => {
                        eprintln!("  FAILED: {e}");
                        failures.push(e);
                    }
                }
            }
        }
    }

    if let Some(path) = &o.json_out {
        let all: Vec<&Value> = results.values().flatten().collect();
        let text = serde_json::to_string_pretty(&all).expect("json");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("writing {path}: {e}");
        }
    }

    print_report(&o, &plan, &results);
    if !failures.is_empty() {
        println!("\n**{} failed runs or streams**:", failures.len());
        for f in &failures {
            println!("- {f}");
        }
        std::process::exit(1);
    }
    std::process::exit(0)
}

fn print_report(o: &Options, plan: &[Scenario], results: &HashMap<(usize, Which), Vec<Value>>) {
    println!(
        "Medians of {} repetition(s); each client in its own process (tokio, 2 workers), \
         the server in another. CPU: getrusage(RUSAGE_SELF) of the client process from just \
         after the client object is built to the last stream's end. Peak: VmHWM; growth: VmHWM \
         − VmRSS before the first stream.\n",
        o.reps
    );
    let mut queue_rows = Vec::new();
    for (si, s) in plan.iter().enumerate() {
        let get = |w: Which| results.get(&(si, w)).map(|r| summarize(r));
        match s.kind {
            Kind::Queue => {
                if let Some(sum) = get(Which::OursLimited) {
                    queue_rows.push((s.n, sum));
                }
            }
            Kind::SideBySide => {
                let peers: Vec<Summary> = [Which::Origin, Which::AsyncOpenai]
                    .into_iter()
                    .filter_map(get)
                    .collect();
                let cheaper_user = peers.iter().map(|p| p.user).fold(f64::NAN, f64::min);
                let smaller_growth = peers.iter().map(|p| p.growth_kb).fold(f64::NAN, f64::min);
                let tokens = s.n as u64 * s.mode.tokens();
                println!(
                    "### {} stream(s) × {} tokens, {} ({} token event(s) per write{})\n",
                    s.n,
                    s.mode.tokens(),
                    s.mode.name(),
                    s.mode.events_per_write(),
                    match s.mode.pace() {
                        Some(p) => format!(", {} ms apart", p.as_millis()),
                        None => ", unpaced".into(),
                    }
                );
                println!(
                    "| client | user CPU (min–max) | sys CPU | user per token | user above floor | peak RSS | growth per stream | wall | user ÷ cheaper peer | growth ÷ smaller peer |"
                );
                println!("|---|---|---|---|---|---|---|---|---|---|");
                let floor_user = get(Which::Bytes).map_or(f64::NAN, |f| f.user);
                for w in PEERS_AND_FLOOR {
                    let Some(x) = get(w) else { continue };
                    println!(
                        "| {} | {:.3} s ({:.2}–{:.2}) | {:.3} s | {:.2} µs | {} | {:.1} MB | {:.1} KB | {:.2} s | {:.2}× | {:.2}× |",
                        w.label(),
                        x.user,
                        x.user_min,
                        x.user_max,
                        x.sys,
                        x.user / tokens as f64 * 1e6,
                        if w == Which::Bytes {
                            "—".to_string()
                        } else {
                            format!("{:.3} s", x.user - floor_user)
                        },
                        x.peak_kb / 1024.0,
                        x.growth_kb / s.n as f64,
                        x.wall,
                        x.user / cheaper_user,
                        x.growth_kb / smaller_growth,
                    );
                    if w != Which::Bytes && x.tokens as u64 != tokens {
                        println!(
                            "| ^ incomplete: {} of {tokens} tokens | | | | | | | | | |",
                            x.tokens
                        );
                    }
                }
                println!();
                let raw = |w: Which| results.get(&(si, w)).map_or(&[][..], |v| v.as_slice());
                if let Some(ours) = get(Which::Ours) {
                    let origin = [raw(Which::Origin)];
                    let both = [raw(Which::Origin), raw(Which::AsyncOpenai)];
                    println!(
                        "Targets (ratio of medians; in brackets the median of per-repetition ratios, \
                         ours and the peer measured seconds apart):\n"
                    );
                    if s.mode == Mode::Fast {
                        if let Some(o) = get(Which::Origin) {
                            let r = ours.user / o.user;
                            let rp = paired_ratio(raw(Which::Ours), &origin, user_cpu);
                            let rt = (ours.user + ours.sys) / (o.user + o.sys);
                            let rtp = paired_ratio(raw(Which::Ours), &origin, total_cpu);
                            println!(
                                "- client CPU ≤ 0.4× the origin crate's — user: {r:.2}× ({rp:.2}×) {}; user + sys: {rt:.2}× ({rtp:.2}×) {}",
                                verdict(r, 0.4),
                                verdict(rt, 0.4)
                            );
                        }
                    } else {
                        let r = ours.user / cheaper_user;
                        let rp = paired_ratio(raw(Which::Ours), &both, user_cpu);
                        let m = ours.growth_kb / smaller_growth;
                        let mp = paired_ratio(raw(Which::Ours), &both, growth_kb);
                        let pk =
                            ours.peak_kb / peers.iter().map(|p| p.peak_kb).fold(f64::NAN, f64::min);
                        let pkp = paired_ratio(raw(Which::Ours), &both, peak_kb);
                        println!(
                            "- user CPU ≤ 0.6× the cheaper peer's — {r:.2}× ({rp:.2}×) {}",
                            verdict(r, 0.6)
                        );
                        println!(
                            "- peak memory per stream ≤ 0.8× the smaller peer's — growth per stream {m:.2}× ({mp:.2}×) {}; whole-process peak {pk:.2}× ({pkp:.2}×) {}",
                            verdict(m, 0.8),
                            verdict(pk, 0.8)
                        );
                    }
                }
                println!();
            }
        }
    }
    if !queue_rows.is_empty() {
        println!(
            "### `max_concurrency(100)`: N short calls queued at once ({} tokens each, unpaced)\n",
            Mode::Short.tokens()
        );
        println!("| calls | user CPU | sys CPU | user per call | peak RSS | wall |");
        println!("|---|---|---|---|---|---|");
        for (n, x) in &queue_rows {
            println!(
                "| {n} | {:.3} s | {:.3} s | {:.1} µs | {:.1} MB | {:.2} s |",
                x.user,
                x.sys,
                x.user / *n as f64 * 1e6,
                x.peak_kb / 1024.0,
                x.wall
            );
        }
        if let (Some((n0, a)), Some((n1, b))) = (queue_rows.first(), queue_rows.last()) {
            if n1 > n0 {
                let per = (b.user / *n1 as f64) / (a.user / *n0 as f64);
                println!(
                    "\n- {}× the calls cost {:.1}× the user CPU (per call {per:.2}×): {}",
                    n1 / n0,
                    b.user / a.user,
                    if per <= 1.5 {
                        "**linear**"
                    } else {
                        "**not linear**"
                    }
                );
            }
        }
    }
}
