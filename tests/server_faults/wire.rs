//! A fault-injecting Ollama server for tests: a raw TCP listener speaking just enough HTTP/1.1
//! (one request per connection, `Connection: close`) to answer `/api/version`, `/api/show`,
//! `/api/tags`, `/api/ps` and `/api/generate` like Ollama, except where the mode in force says
//! to misbehave. Raw TCP, not a web framework, so that a mode can write anything: bytes that are
//! not HTTP, half a line, a reset, nothing at all.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One thing the server does on a connection, in order.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Wait.
    Sleep(Duration),
    /// Write one byte of this every interval, forever (until the client goes away).
    Drip(Vec<u8>, Duration),
    /// Send nothing more and keep the connection open, forever.
    Hang,
    /// Reset the connection (RST, not FIN).
    Reset,
}

/// What the server was asked.
#[derive(Clone, Debug)]
pub struct Asked {
    pub method: String,
    pub path: String,
    pub body: Value,
}

impl Asked {
    /// A generate request that only loads the model (empty prompt).
    pub fn is_load(&self) -> bool {
        self.path == "/api/generate" && self.body["prompt"].as_str() == Some("")
    }

    /// The num_predict of a generate request.
    pub fn num_predict(&self) -> u64 {
        self.body["options"]["num_predict"].as_u64().unwrap_or(16)
    }
}

/// How the server answers one request; `None` means as Ollama would.
pub type Answer = dyn Fn(&Asked, usize) -> Option<Vec<Step>> + Send + Sync;

/// A running fault server.
pub struct FaultServer {
    pub addr: SocketAddr,
    answer: Arc<Mutex<Arc<Answer>>>,
    /// Generate requests with a prompt served so far (the fault modes count them).
    pub generates: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    pub async fn start() -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer: Arc<Mutex<Arc<Answer>>> = Arc::new(Mutex::new(Arc::new(|_: &Asked, _| None)));
        let generates = Arc::new(AtomicUsize::new(0));
        let (a, g) = (answer.clone(), generates.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let answer = a.lock().unwrap().clone();
                let g = g.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, answer, g).await;
                });
            }
        });
        FaultServer {
            addr,
            answer,
            generates,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer from now on with `f` (None from it: as Ollama would); resets the counter.
    pub fn set(&self, f: Arc<Answer>) {
        *self.answer.lock().unwrap() = f;
        self.generates.store(0, Ordering::SeqCst);
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

async fn serve(
    mut conn: TcpStream,
    answer: Arc<Answer>,
    generates: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let Some(asked) = read_request(&mut conn).await? else {
        return Ok(());
    };
    let n = if asked.path == "/api/generate" && !asked.is_load() {
        generates.fetch_add(1, Ordering::SeqCst)
    } else {
        usize::MAX
    };
    let steps = answer(&asked, n).unwrap_or_else(|| healthy(&asked));
    for step in steps {
        match step {
            Step::Write(bytes) => conn.write_all(&bytes).await?,
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::Drip(bytes, every) => loop {
                for b in &bytes {
                    conn.write_all(&[*b]).await?;
                    tokio::time::sleep(every).await;
                }
            },
            Step::Hang => {
                // Wait until the client gives up and closes.
                let mut sink = [0u8; 64];
                while conn.read(&mut sink).await? > 0 {}
                return Ok(());
            }
            Step::Reset => {
                conn.set_zero_linger()?;
                drop(conn);
                return Ok(());
            }
        }
    }
    conn.shutdown().await
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<Asked>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
    Ok(Some(Asked { method, path, body }))
}

/// HTTP response head; the body runs until the connection closes.
pub fn head(status: u16, content_type: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// A whole JSON answer.
pub fn json_answer(status: u16, v: &Value) -> Vec<Step> {
    let mut bytes = head(status, "application/json; charset=utf-8");
    bytes.extend_from_slice(v.to_string().as_bytes());
    vec![Step::Write(bytes)]
}

/// A token line of a stream.
pub fn token_line(text: &str) -> Vec<u8> {
    let mut l = json!({"model": "m", "created_at": "2026-01-01T00:00:00Z", "response": text, "done": false})
        .to_string()
        .into_bytes();
    l.push(b'\n');
    l
}

/// Plausible metrics of a final line for `n` tokens: 2 ms a token, 10 prompt tokens in 5 ms,
/// 1 ms of load; the stream takes about as long as they say.
pub fn final_metrics(n: u64) -> Value {
    let ms = 1_000_000u64;
    json!({
        "model": "m", "created_at": "2026-01-01T00:00:00Z", "response": "", "done": true,
        "done_reason": "length",
        "total_duration": (2 * n + 7) * ms, "load_duration": ms,
        "prompt_eval_count": 10, "prompt_eval_duration": 5 * ms,
        "eval_count": n, "eval_duration": 2 * n * ms,
    })
}

/// A streamed generate answer: `n` token lines, the time they take, then `last` as a line.
pub fn stream(n: u64, last: &Value, content_type: &str) -> Vec<Step> {
    let mut bytes = head(200, content_type);
    for _ in 0..n {
        bytes.extend(token_line("tok "));
    }
    let mut end = last.to_string().into_bytes();
    end.push(b'\n');
    vec![
        Step::Write(bytes),
        Step::Sleep(Duration::from_millis(2 * n + 10)),
        Step::Write(end),
    ]
}

/// What Ollama answers.
pub fn healthy(asked: &Asked) -> Vec<Step> {
    let arch = "gemma3";
    match (asked.method.as_str(), asked.path.as_str()) {
        ("GET", "/api/version") => json_answer(200, &json!({"version": "0.12.0"})),
        ("GET", "/api/tags") => json_answer(
            200,
            &json!({"models": [{"name": "m:latest", "model": "m:latest", "digest": "abc", "size": 1}]}),
        ),
        ("GET", "/api/ps") => json_answer(200, &json!({"models": []})),
        ("POST", "/api/show") => json_answer(
            200,
            &json!({"details": {}, "model_info": {
                "general.architecture": arch,
                format!("{arch}.block_count"): 34,
                format!("{arch}.context_length"): 131072,
            }}),
        ),
        ("POST", "/api/generate") if asked.is_load() => json_answer(
            200,
            &json!({"model": "m", "response": "", "done": true, "done_reason": "load"}),
        ),
        ("POST", "/api/generate") => {
            let n = asked.num_predict();
            stream(n, &final_metrics(n), "application/x-ndjson")
        }
        _ => {
            let mut b = head(404, "text/plain");
            b.extend_from_slice(b"404 page not found");
            vec![Step::Write(b)]
        }
    }
}
