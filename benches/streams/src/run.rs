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
    /// More rows of this workspace's client from other builds of this binary: (label, path).
    pub also: Vec<(String, String)>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            reps: 5,
            quick: false,
            smoke: false,
            with_100: false,
            json_out: None,
            also: Vec::new(),
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
                "--also" => {
                    let v = it.next().ok_or("--also needs LABEL=PATH")?;
                    let (label, path) = v.split_once('=').ok_or("--also needs LABEL=PATH")?;
                    if !std::path::Path::new(path).is_file() {
                        return Err(format!("--also: no binary at {path}"));
                    }
                    o.also.push((label.to_owned(), path.to_owned()));
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(o)
    }
}

const PEERS_AND_FLOOR: [Which; 4] = [Which::Bytes, Which::Ours, Which::Origin, Which::AsyncOpenai];

/// A measured client: one of this binary's, or this workspace's client as another build of
/// this binary runs it (`--also`, by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Builtin(Which),
    Also(usize),
}

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
    fn clients(self, also: usize) -> Vec<Who> {
        match self.kind {
            Kind::SideBySide => PEERS_AND_FLOOR
                .iter()
                .map(|&w| Who::Builtin(w))
                .chain((0..also).map(Who::Also))
                .collect(),
            Kind::Queue => vec![Who::Builtin(Which::OursLimited)],
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

fn run_client(
    which: Which,
    exe: Option<&str>,
    mode: Mode,
    n: usize,
    port: u16,
) -> Result<Value, String> {
    let exe = match exe {
        Some(path) => path.into(),
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
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

fn measure_once(which: Which, exe: Option<&str>, mode: Mode, n: usize) -> Result<Value, String> {
    let (_server, port) = start_server(mode)?;
    let report = run_client(which, exe, mode, n, port);
    // Let the last sockets close before the next pair starts.
    std::thread::sleep(Duration::from_millis(300));
    report
}

/// Median of one numeric field over the repetitions.
fn median(reports: &[Value], field: &str) -> f64 {
    median_of(reports.iter().filter_map(|r| r[field].as_f64()).collect())
}

/// The median of `v`; NaN when it is empty.
fn median_of(mut v: Vec<f64>) -> f64 {
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
                .filter_map(|p| same_rep(p, o).map(metric))
                .fold(f64::NAN, f64::min);
            let ratio = metric(o) / best;
            ratio.is_finite().then(|| serde_json::json!({ "x": ratio }))
        })
        .collect();
    median(&ratios, "x")
}

/// The report of the same repetition as `o` among `reports`.
fn same_rep<'a>(reports: &'a [Value], o: &Value) -> Option<&'a Value> {
    reports.iter().find(|r| r["rep"] == o["rep"])
}

/// The median over repetitions of `(ours − floor) ÷ (peer − floor)`, all three taken in the
/// same repetition.
fn paired_above(ours: &[Value], peer: &[Value], floor: &[Value], metric: fn(&Value) -> f64) -> f64 {
    let ratios: Vec<Value> = ours
        .iter()
        .filter_map(|o| {
            let f = metric(same_rep(floor, o)?);
            let ratio = (metric(o) - f) / (metric(same_rep(peer, o)?) - f);
            ratio.is_finite().then(|| serde_json::json!({ "x": ratio }))
        })
        .collect();
    median(&ratios, "x")
}

/// A 95 % bootstrap interval of the ratio of medians `(ours − floor) ÷ (peer − floor)`:
/// whole repetitions (the three clients' runs of one repetition together) drawn with
/// replacement, 2 000 times, from a fixed seed. "Above the floor" is a difference of two
/// totals that each move with the shared machine's load, so a ratio of medians near a target
/// says little without it. `None` with fewer than three complete repetitions.
fn bootstrap_above(
    ours: &[Value],
    peer: &[Value],
    floor: &[Value],
    metric: fn(&Value) -> f64,
) -> Option<(f64, f64)> {
    let reps: Vec<[f64; 3]> = ours
        .iter()
        .filter_map(|o| {
            Some([
                metric(o),
                metric(same_rep(peer, o)?),
                metric(same_rep(floor, o)?),
            ])
        })
        .collect();
    bootstrap_ratio(&reps, 2_000)
}

/// See [`bootstrap_above`]; each row is `[ours, peer, floor]` of one repetition.
pub(crate) fn bootstrap_ratio(reps: &[[f64; 3]], draws: usize) -> Option<(f64, f64)> {
    if reps.len() < 3 {
        return None;
    }
    // xorshift64*: reproducible without a dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut ratios: Vec<f64> = (0..draws)
        .filter_map(|_| {
            let sample: Vec<&[f64; 3]> = (0..reps.len())
                .map(|_| &reps[(next() % reps.len() as u64) as usize])
                .collect();
            let col = |k: usize| median_of(sample.iter().map(|r| r[k]).collect());
            let (o, p, f) = (col(0), col(1), col(2));
            let r = (o - f) / (p - f);
            r.is_finite().then_some(r)
        })
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target {
        "**met**"
    } else {
        "**missed**"
    }
}

impl Who {
    fn name(self, o: &Options) -> String {
        match self {
            Who::Builtin(w) => w.name().to_owned(),
            Who::Also(i) => format!("ours ({})", o.also[i].0),
        }
    }

    fn label(self, o: &Options) -> String {
        match self {
            Who::Builtin(w) => w.label().to_owned(),
            Who::Also(i) => format!("vllm-client, {}", o.also[i].0),
        }
    }
}

pub fn main(o: Options) -> ! {
    crate::measure::raise_fd_limit();
    let plan = scenarios(&o);
    let mut results: HashMap<(usize, Who), Vec<Value>> = HashMap::new();
    let mut failures = Vec::new();
    for rep in 0..o.reps {
        for (si, s) in plan.iter().enumerate() {
            let clients = s.clients(o.also.len());
            // Rotate the order each repetition, so no client is always first or last.
            for k in 0..clients.len() {
                let who = clients[(k + rep) % clients.len()];
                eprintln!(
                    "rep {}/{}: {} × {} {} …",
                    rep + 1,
                    o.reps,
                    who.name(&o),
                    s.n,
                    s.mode.name()
                );
                let (which, exe) = match who {
                    Who::Builtin(w) => (w, None),
                    Who::Also(i) => (Which::Ours, Some(o.also[i].1.as_str())),
                };
                match measure_once(which, exe, s.mode, s.n) {
                    Ok(mut r) => {
                        r["rep"] = rep.into();
                        r["label"] = who.label(&o).into();
                        eprintln!("  {r}");
                        if r["failed"].as_u64() != Some(0) {
                            failures.push(format!("{}: {}", who.name(&o), r["first_error"]));
                        }
                        results.entry((si, who)).or_default().push(r);
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

/// `a ÷ b` printed as a ratio, or `—` when it means nothing (`b` not above zero).
fn ratio(a: f64, b: f64) -> String {
    let r = a / b;
    if r.is_finite() && b > 0.0 {
        format!("{r:.2}×")
    } else {
        "—".into()
    }
}

fn print_report(o: &Options, plan: &[Scenario], results: &HashMap<(usize, Who), Vec<Value>>) {
    println!(
        "Medians of {} repetition(s); each client in its own process (tokio, 2 workers), \
         the server in another. CPU: getrusage(RUSAGE_SELF) of the client process from just \
         after the client object is built to the last stream's end. Peak: VmHWM; growth: VmHWM \
         − VmRSS before the first stream. Above the floor: minus bare reqwest's (the floor) in \
         the same run. Ratios in brackets: the median of per-repetition ratios (all clients of a \
         ratio measured seconds apart).\n",
        o.reps
    );
    let mut queue_rows = Vec::new();
    for (si, s) in plan.iter().enumerate() {
        let get = |w: Who| results.get(&(si, w)).map(|r| summarize(r));
        let raw = |w: Who| results.get(&(si, w)).map_or(&[][..], |v| v.as_slice());
        match s.kind {
            Kind::Queue => {
                if let Some(sum) = get(Who::Builtin(Which::OursLimited)) {
                    queue_rows.push((s.n, sum));
                }
            }
            Kind::SideBySide => {
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
                let floor = get(Who::Builtin(Which::Bytes));
                let origin = get(Who::Builtin(Which::Origin));
                let aoai = get(Who::Builtin(Which::AsyncOpenai));
                let f_user = floor.map_or(f64::NAN, |f| f.user);
                let f_growth = floor.map_or(f64::NAN, |f| f.growth_kb);
                let above_user = |x: &Summary| x.user - f_user;
                let above_growth = |x: &Summary| (x.growth_kb - f_growth) / s.n as f64;
                println!(
                    "| client | user CPU (min–max) | sys CPU | user above floor | per token | ÷ origin | ÷ async-openai | growth per stream | above floor | ÷ origin | ÷ async-openai | peak RSS | wall |"
                );
                println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
                let mut rows: Vec<Who> =
                    vec![Who::Builtin(Which::Bytes), Who::Builtin(Which::Ours)];
                rows.extend((0..o.also.len()).map(Who::Also));
                rows.extend([
                    Who::Builtin(Which::Origin),
                    Who::Builtin(Which::AsyncOpenai),
                ]);
                for w in rows {
                    let Some(x) = get(w) else { continue };
                    let is_floor = w == Who::Builtin(Which::Bytes);
                    let dash = |v: String| if is_floor { "—".to_string() } else { v };
                    println!(
                        "| {} | {:.3} s ({:.2}–{:.2}) | {:.3} s | {} | {} | {} | {} | {:.1} KB | {} | {} | {} | {:.1} MB | {:.2} s |",
                        w.label(o),
                        x.user,
                        x.user_min,
                        x.user_max,
                        x.sys,
                        dash(format!("{:.3} s", above_user(&x))),
                        dash(format!("{:.2} µs", above_user(&x) / tokens as f64 * 1e6)),
                        dash(origin.map_or("—".into(), |p| ratio(above_user(&x), above_user(&p)))),
                        dash(aoai.map_or("—".into(), |p| ratio(above_user(&x), above_user(&p)))),
                        x.growth_kb / s.n as f64,
                        dash(format!("{:.1} KB", above_growth(&x))),
                        dash(origin.map_or("—".into(), |p| ratio(above_growth(&x), above_growth(&p)))),
                        dash(aoai.map_or("—".into(), |p| ratio(above_growth(&x), above_growth(&p)))),
                        x.peak_kb / 1024.0,
                        x.wall,
                    );
                    if !is_floor && x.tokens as u64 != tokens {
                        println!(
                            "| ^ incomplete: {} of {tokens} tokens | | | | | | | | | | | | |",
                            x.tokens
                        );
                    }
                }
                println!();
                let Some(origin) = origin else { continue };
                println!("Targets (ratio of medians; in brackets the median of per-repetition ratios and a 95 % bootstrap interval of the ratio of medians):\n");
                let ours_rows = std::iter::once(Who::Builtin(Which::Ours))
                    .chain((0..o.also.len()).map(Who::Also));
                for w in ours_rows {
                    let Some(x) = get(w) else { continue };
                    let (mine, peer, fl) = (
                        raw(w),
                        raw(Who::Builtin(Which::Origin)),
                        raw(Who::Builtin(Which::Bytes)),
                    );
                    if s.mode == Mode::Fast {
                        let r = x.user / origin.user;
                        let rp = paired_ratio(mine, &[peer], user_cpu);
                        let rt = (x.user + x.sys) / (origin.user + origin.sys);
                        let rtp = paired_ratio(mine, &[peer], total_cpu);
                        println!(
                            "- {}: user CPU ≤ 0.4× the origin crate's — {r:.2}× ({rp:.2}×) {}; user + sys {rt:.2}× ({rtp:.2}×)",
                            w.label(o),
                            verdict(r, 0.4),
                        );
                    } else {
                        let r = above_user(&x) / above_user(&origin);
                        let rp = paired_above(mine, peer, fl, user_cpu);
                        let m = above_growth(&x) / above_growth(&origin);
                        let mp = paired_above(mine, peer, fl, growth_kb);
                        let interval = |b: Option<(f64, f64)>| {
                            b.map_or(String::new(), |(lo, hi)| {
                                format!(", 95 % interval {lo:.2}–{hi:.2}")
                            })
                        };
                        let ri = interval(bootstrap_above(mine, peer, fl, user_cpu));
                        let mi = interval(bootstrap_above(mine, peer, fl, growth_kb));
                        println!(
                            "- {}: user CPU above the floor ≤ 0.6× the origin crate's — {r:.2}× ({rp:.2}×{ri}) {}; memory growth per stream above the floor ≤ the origin crate's — {m:.2}× ({mp:.2}×{mi}) {}",
                            w.label(o),
                            verdict(r, 0.6),
                            verdict(m, 1.0),
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

#[cfg(test)]
mod tests {
    use super::bootstrap_ratio;

    #[test]
    fn identical_repetitions_give_a_point_interval() {
        let reps = vec![[1.5, 2.0, 1.0]; 5];
        assert_eq!(bootstrap_ratio(&reps, 200), Some((0.5, 0.5)));
    }

    #[test]
    fn the_interval_holds_the_ratio_of_medians_and_widens_with_noise() {
        let reps: Vec<[f64; 3]> = (0..9)
            .map(|i| {
                let f = 1.0 + 0.1 * (i % 3) as f64;
                [f + 0.5 + 0.05 * (i % 4) as f64, f + 1.0, f]
            })
            .collect();
        let (lo, hi) = bootstrap_ratio(&reps, 2_000).unwrap();
        assert!(lo < hi, "{lo} {hi}");
        assert!(lo <= 0.6 && hi >= 0.5, "{lo} {hi}");
        assert_eq!(bootstrap_ratio(&reps[..2], 2_000), None);
    }
}
