//! The whole harness at a tiny size: a server process and every client process, 5 streams of
//! 5 tokens each, plus the admission queue with 5 and 50 calls. Checks every stream completed
//! and the report has its tables; takes a few seconds. The real matrix is `streams run`.

use std::process::Command;

#[test]
fn every_client_completes_five_short_streams() {
    let out = Command::new(env!("CARGO_BIN_EXE_streams"))
        .args(["run", "--smoke", "--reps", "1"])
        .output()
        .expect("run the streams binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for row in [
        "bare reqwest",
        "vllm-client (this workspace)",
        "vllm-client 0.1.2",
        "async-openai",
        "| 50 |",
    ] {
        assert!(stdout.contains(row), "no {row:?} row in:\n{stdout}");
    }
    assert_eq!(stderr.matches("\"failed\":0").count(), 6, "{stderr}");
}
