//! The `instagram-sim` binary: `--seed demo --cookies-out FILE` serves the demo dataset and
//! writes cookies that authenticate against it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Kills the simulator process when the test ends, pass or fail.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_the_demo_seed_and_writes_its_cookies() {
    let cookies_path =
        std::env::temp_dir().join(format!("instagram-sim-cookies-{}.json", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_instagram-sim"))
        .args(["--port", "0", "--seed", "demo", "--cookies-out"])
        .arg(&cookies_path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start instagram-sim");
    let mut child = ChildGuard(child);
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let base_url = stdout
        .lines()
        .map(|line| line.unwrap())
        .find_map(|line| {
            line.strip_prefix("instagram-sim listening on ")
                .map(str::to_owned)
        })
        .expect("the binary prints its URL");

    let cookies: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&cookies_path).unwrap()).unwrap();
    std::fs::remove_file(&cookies_path).unwrap();
    let names: Vec<&str> = cookies.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["csrftoken", "ds_user_id", "ig_did", "mid", "sessionid"]
    );

    let cookie_header = cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    let inbox: serde_json::Value = reqwest::Client::new()
        .get(format!("{base_url}/api/v1/direct_v2/inbox/"))
        .header("User-Agent", "Instagram 275.0.0.27.98 Android (33/13; 420dpi; 1080x2400; Google/google; Pixel 7; panther; tensor; en_US; 458229258)")
        .header("X-IG-App-ID", "567067343352427")
        .header("Cookie", cookie_header)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(inbox["viewer"]["username"], "bridge.tester");
    assert_eq!(inbox["inbox"]["threads"].as_array().unwrap().len(), 6);
}
