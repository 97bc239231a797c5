//! Load test of the HTTP front door: requests per second and latency of
//! `POST /v2/event` against the example gateway, and against the same
//! server in `--floor` mode (202 without parsing or emitting: the HTTP
//! stack alone). Rounds interleave the two, alternating which goes first.
//!
//! ```text
//! cargo build --release -p evqueue-gateway
//! target/release/http_load [--rounds 5] [--seconds 3] [--connections 8] [--workers 2]
//! ```
//!
//! Each run starts the gateway (`http_gateway`, next to this program) on a
//! free loopback port, keeps `--connections` keep-alive connections each
//! sending one request at a time for half a second of warm-up and then
//! `--seconds` of measurement, and stops it with SIGTERM (it must exit 0,
//! every accepted event handled).

use evqueue_gateway::client::Client;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::Barrier;
use std::time::{Duration, Instant};

const BODY: &[u8] = br#"{"name": "level_up", "properties": {"level": "7", "user": "ada"}}"#;

struct Args {
    rounds: usize,
    seconds: f64,
    connections: usize,
    workers: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        rounds: 5,
        seconds: 3.0,
        connections: 8,
        workers: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("{flag}: bad value {value}");
        match flag.as_str() {
            "--rounds" => a.rounds = value.parse().map_err(bad)?,
            "--seconds" => a.seconds = value.parse().map_err(|_| format!("{flag}: bad value"))?,
            "--connections" => a.connections = value.parse().map_err(bad)?,
            "--workers" => a.workers = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

#[derive(Clone, Copy, Debug)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    non_202: u64,
}

fn start_server(floor: bool, workers: usize) -> Result<(Child, SocketAddr), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let server = exe.with_file_name("http_gateway");
    let mut cmd = Command::new(&server);
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--summary-secs",
        "0",
        "--overflow",
        "reject",
    ])
    .args(["--workers", &workers.to_string()])
    .stdout(Stdio::piped());
    if floor {
        cmd.arg("--floor");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", server.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().ok_or("no stdout")?)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("unexpected first line {line:?}"))?;
    Ok((child, addr))
}

#[cfg(not(unix))]
fn stop_server(mut child: Child) -> Result<(), String> {
    let _ = child.kill();
    Err("the load test stops the gateway with SIGTERM: Unix only".into())
}

#[cfg(unix)]
fn stop_server(mut child: Child) -> Result<(), String> {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if !status.success() || !out.contains("left=0 timed_out=false") {
        return Err(format!("gateway did not drain cleanly ({status}):\n{out}"));
    }
    Ok(())
}

fn run(floor: bool, a: &Args) -> Result<Run, String> {
    let (child, addr) = start_server(floor, a.workers)?;
    let warmup = Duration::from_millis(500);
    let measure = Duration::from_secs_f64(a.seconds);
    let barrier = Arc::new(Barrier::new(a.connections));
    let threads: Vec<_> = (0..a.connections)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || -> std::io::Result<(Vec<u32>, u64)> {
                let mut client = Client::connect(addr)?;
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut non_202 = 0;
                barrier.wait();
                let start = Instant::now();
                let (measure_from, end) = (start + warmup, start + warmup + measure);
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let status = client.post("/v2/event", BODY)?.status;
                    if t0 >= measure_from {
                        let us = t0.elapsed().as_nanos() / 1000;
                        latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                        non_202 += u64::from(status != 202);
                    }
                }
                Ok((latencies, non_202))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut non_202 = 0;
    for t in threads {
        let (lat, n) = t
            .join()
            .map_err(|_| "client thread panicked".to_string())?
            .map_err(|e| e.to_string())?;
        all.extend(lat);
        non_202 += n;
    }
    stop_server(child)?;
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize] as f64;
    Ok(Run {
        rps: all.len() as f64 / a.seconds,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        non_202,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "{e}\nusage: http_load [--rounds N] [--seconds S] [--connections N] [--workers N]"
            );
            return ExitCode::from(2);
        }
    };
    println!(
        "{} rounds, {} s each after 0.5 s warm-up, {} keep-alive connections, gateway with {} workers",
        a.rounds, a.seconds, a.connections, a.workers
    );
    let mut floor_runs = Vec::new();
    let mut gate_runs = Vec::new();
    for round in 0..a.rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for floor in order {
            match run(floor, &a) {
                Ok(r) => {
                    println!(
                        "round {} {:<8} {:>9.0} req/s  p50 {:>5.0} us  p99 {:>5.0} us  non-202 {}",
                        round + 1,
                        if floor { "floor" } else { "gateway" },
                        r.rps,
                        r.p50_us,
                        r.p99_us,
                        r.non_202
                    );
                    if floor {
                        &mut floor_runs
                    } else {
                        &mut gate_runs
                    }
                    .push(r);
                }
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let rps_ratio: Vec<f64> = gate_runs
        .iter()
        .zip(&floor_runs)
        .map(|(g, f)| g.rps / f.rps)
        .collect();
    let p99_ratio: Vec<f64> = gate_runs
        .iter()
        .zip(&floor_runs)
        .map(|(g, f)| g.p99_us / f.p99_us)
        .collect();
    let summary = |name: &str, runs: &[Run]| {
        let rps: Vec<f64> = runs.iter().map(|r| r.rps).collect();
        let p99: Vec<f64> = runs.iter().map(|r| r.p99_us).collect();
        let p50: Vec<f64> = runs.iter().map(|r| r.p50_us).collect();
        let ((rl, rh), (pl, ph)) = (range(&rps), range(&p99));
        println!(
            "| {name} | {:.0} ({rl:.0}-{rh:.0}) | {:.0} | {:.0} ({pl:.0}-{ph:.0}) |",
            median(rps.clone()),
            median(p50),
            median(p99.clone())
        );
    };
    println!("\n| server | req/s, median (range) | p50 µs, median | p99 µs, median (range) |\n| --- | --- | --- | --- |");
    summary("floor (202, no parse, no emit)", &floor_runs);
    summary("gateway (parse, emit, count)", &gate_runs);
    let ((rl, rh), (pl, ph)) = (range(&rps_ratio), range(&p99_ratio));
    println!(
        "\ngateway / floor, same round: req/s {:.2} ({rl:.2}-{rh:.2}), p99 {:.2} ({pl:.2}-{ph:.2})",
        median(rps_ratio.clone()),
        median(p99_ratio.clone())
    );
    ExitCode::SUCCESS
}
