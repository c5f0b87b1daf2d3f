//! A small W3C WebDriver client for browser tests: starts Debian's
//! `chromedriver` on a free 127.0.0.1 port and drives headless Chromium.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http;

/// The chromedriver binary: `REGATTA_CHROMEDRIVER`, else Debian's.
pub fn chromedriver_path() -> String {
    std::env::var("REGATTA_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// One browser session; the browser and driver stop when dropped.
pub struct Browser {
    driver: Child,
    address: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http::request(&self.address, "DELETE", &path, &[], None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`.
    pub fn start(width: u32, height: u32) -> Result<Self, String> {
        Self::start_with(width, height, &[])
    }

    /// As [`Browser::start`], with more Chromium flags.
    pub fn start_with(width: u32, height: u32, flags: &[String]) -> Result<Self, String> {
        let port = crate::free_port();
        let address = format!("127.0.0.1:{port}");
        let driver = Command::new(chromedriver_path())
            // Without --allowed-ips chromedriver listens on loopback only.
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromedriver_path()))?;
        let mut b = Browser {
            driver,
            address,
            session: String::new(),
        };
        let started = Instant::now();
        while http::get(&b.address, "/status", &[]).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("chromedriver did not answer within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--window-size={width},{height}"));
        args.extend(flags.iter().cloned());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": args}
        }}});
        let reply = b.call("POST", "/session", Some(caps))?;
        b.session = reply["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {reply}"))?
            .to_string();
        Ok(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string());
        let reply = http::request(&self.address, method, path, &[], body.as_deref())
            .map_err(|e| format!("webdriver {method} {path}: {e}"))?;
        let v: Value = serde_json::from_str(&reply.body)
            .map_err(|e| format!("webdriver {method} {path}: {e}: {}", reply.body))?;
        if reply.status != 200 {
            return Err(format!("webdriver {method} {path}: {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url`.
    pub fn open(&self, url: &str) -> Result<(), String> {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        )
        .map(|_| ())
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Result<Value, String> {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Waits until `script` returns something truthy (not null, false, 0 or
    /// ""), and gives that value.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Result<Value, String> {
        let started = Instant::now();
        loop {
            let last = match self.eval(script) {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => v,
                Err(e) => Value::String(e),
            };
            if started.elapsed() > timeout {
                return Err(format!(
                    "the page never showed {what} in {timeout:?} (last: {last})"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        let v = self.call("GET", &self.session_path("/screenshot"), None)?;
        let b64 = v.as_str().ok_or("the screenshot is not a string")?;
        base64_decode(b64)
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        let v = A
            .iter()
            .position(|x| *x == c)
            .ok_or_else(|| format!("bad base64 byte {c}"))? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
