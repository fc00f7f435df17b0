//! Inference on OpenAI-compatible servers (vLLM, SGLang, llama.cpp's `llama-server`, or `crow serve --role
//! infer`), so that models move to GPU machines without changing the pipeline.
//!
//! A [`ServerPool`] spreads requests over several servers: at most `max_in_flight` requests on each at
//! once, the least busy healthy server first, a request that fails on one server (refused connection,
//! timeout, HTTP 5xx or 429) tried on the next, and a server that failed left out until its health probe
//! (`GET {url}/models`, every `health_interval_ms`) answers again. Two clients share a pool:
//! [`RemoteDescriber`] (a frame as a base64 JPEG `image_url`) and [`RemoteText`] (text tasks with the
//! answer's JSON Schema as `response_format`, checked by crow whatever the server did with it).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::describer::DEFAULT_VISION_PROMPT;
use crate::describer::{DescribeInput, Description, FrameDescriber};
use crate::frame::encode_jpeg;
use crate::grammar::JsonShape;
use crate::text::{GenerationStats, TextGenerator};
use crate::InferenceError;

/// Requests sent, by server and outcome (`ok`, `http_4xx`, `http_5xx`, `overloaded`, `unreachable`).
pub const METRIC_REQUESTS: &str = "crow_inference_server_requests_total";
/// 1 while a server's last request or health probe succeeded, else 0 (by server).
pub const METRIC_UP: &str = "crow_inference_server_up";
/// Requests in flight, by server.
pub const METRIC_IN_FLIGHT: &str = "crow_inference_server_in_flight";

/// Where and how to call the servers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// One server's base URL, e.g. `http://gpu-box:8080/v1` (kept for one-server configs; `servers`
    /// lists several). With neither, `http://127.0.0.1:8080/v1`.
    pub url: Option<String>,
    /// Base URLs of the OpenAI-compatible APIs, each ending where `/chat/completions` and `/models`
    /// begin (usually `.../v1`).
    pub servers: Vec<String>,
    /// Model name sent with each request (servers that host one model ignore it; vLLM wants it).
    pub model: String,
    /// Bearer token, if the servers want one (the same for all).
    pub api_key: Option<String>,
    /// Instruction sent with every frame; `None` uses crow's default.
    pub prompt: Option<String>,
    /// Most tokens generated per frame.
    pub max_tokens: u32,
    /// Per-request timeout, ms; also the longest a request waits for a server with room.
    pub timeout_ms: u64,
    /// JPEG quality of the image sent (1..=100).
    pub jpeg_quality: i32,
    /// Requests in flight on one server at most.
    pub max_in_flight: usize,
    /// How often each server's health is probed, ms.
    pub health_interval_ms: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            url: None,
            servers: Vec::new(),
            model: "default".into(),
            api_key: None,
            prompt: None,
            max_tokens: 96,
            timeout_ms: 60_000,
            jpeg_quality: 85,
            max_in_flight: 4,
            health_interval_ms: 5_000,
        }
    }
}

impl RemoteConfig {
    /// The servers' base URLs without a trailing `/`: `url` then `servers`, each once.
    pub fn server_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        for u in self.url.iter().chain(&self.servers) {
            let u = u.trim_end_matches('/').to_owned();
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
        if urls.is_empty() {
            urls.push("http://127.0.0.1:8080/v1".into());
        }
        urls
    }

    /// Checks what can be checked without a server.
    pub fn validate(&self) -> Result<(), String> {
        for u in self.server_urls() {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!(
                    "server url {u:?} must start with http:// or https://"
                ));
            }
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight must be at least 1".into());
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(format!(
                "jpeg_quality {} is outside 1..=100",
                self.jpeg_quality
            ));
        }
        Ok(())
    }
}

fn remote_error(message: impl std::fmt::Display) -> InferenceError {
    InferenceError::Model(format!("remote inference: {message}"))
}

/// What the pool knows about one server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerStatus {
    /// Base URL.
    pub url: String,
    /// Whether requests go to it: its last request or probe succeeded.
    pub healthy: bool,
    /// Requests in flight now.
    pub in_flight: usize,
    /// The most requests it ever had in flight at once (never above `max_in_flight`).
    pub peak_in_flight: usize,
    /// Requests that got an answer.
    pub answered: u64,
    /// Requests that failed on it (and were tried elsewhere where possible).
    pub failed: u64,
    /// Why it is unhealthy, if it is.
    pub last_error: Option<String>,
}

struct Server {
    url: String,
    chat: String,
    models: String,
}

struct PoolState {
    servers: Vec<ServerStatus>,
    /// Round-robin start, so equally busy servers take turns.
    next: usize,
}

struct PoolInner {
    servers: Vec<Server>,
    state: Mutex<PoolState>,
    /// Signalled when a request finishes or a server becomes healthy.
    changed: Condvar,
    /// Always `Some` until dropped (see `Drop`).
    client: Option<reqwest::blocking::Client>,
    config: RemoteConfig,
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // reqwest's blocking client owns a runtime that must not be shut down on an async task's thread;
        // the last handle may well be dropped on one (a pipeline shutting down).
        if let Some(client) = self.client.take() {
            let _ = std::thread::Builder::new()
                .name("crow-infer-drop".into())
                .spawn(move || drop(client));
        }
    }
}

impl PoolInner {
    // `client` is `Some` from construction until `Drop` takes it.
    #[allow(clippy::expect_used)]
    fn client(&self) -> &reqwest::blocking::Client {
        self.client
            .as_ref()
            .expect("the client lives as long as the pool")
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_health(&self, i: usize, healthy: bool, error: Option<String>) {
        let mut state = self.lock();
        let s = &mut state.servers[i];
        if s.healthy != healthy {
            if healthy {
                tracing::info!(server = %s.url, "inference server is healthy again");
            } else {
                tracing::warn!(server = %s.url, error = error.as_deref().unwrap_or(""), "inference server left out until its health probe answers");
            }
        }
        s.healthy = healthy;
        s.last_error = if healthy { None } else { error };
        metrics::gauge!(METRIC_UP, "server" => s.url.clone()).set(if healthy { 1.0 } else { 0.0 });
        drop(state);
        if healthy {
            self.changed.notify_all();
        }
    }
}

/// Several OpenAI-compatible servers behind one handle. Cheap to clone; the health prober stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct ServerPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for ServerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPool")
            .field("servers", &self.inner.config.server_urls())
            .finish()
    }
}

/// A request's claim on one server's capacity; released on drop.
struct Lease<'a> {
    pool: &'a PoolInner,
    index: usize,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        let s = &mut state.servers[self.index];
        s.in_flight -= 1;
        metrics::gauge!(METRIC_IN_FLIGHT, "server" => s.url.clone()).set(s.in_flight as f64);
        drop(state);
        self.pool.changed.notify_all();
    }
}

/// How one attempt on one server ended.
enum Attempt {
    Answer(Value),
    /// The server failed; another may succeed.
    ServerFault(String),
    /// The request itself is wrong (HTTP 4xx other than 429); no server will take it.
    Refused(String),
}

impl ServerPool {
    /// A pool over `config`'s servers (checked; no request is made here). All start healthy; the
    /// prober checks them at once and then every `health_interval_ms`.
    pub fn new(config: RemoteConfig) -> Result<ServerPool, InferenceError> {
        config.validate().map_err(remote_error)?;
        // Built on a plain thread: reqwest's blocking client refuses to start inside an async runtime,
        // and pools are made from async code (`Pipeline::start`) as well as from plain threads.
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let client = std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
        })
        .join()
        .map_err(|_| remote_error("building the HTTP client panicked"))?
        .map_err(remote_error)?;
        let servers: Vec<Server> = config
            .server_urls()
            .into_iter()
            .map(|url| Server {
                chat: format!("{url}/chat/completions"),
                models: format!("{url}/models"),
                url,
            })
            .collect();
        let state = PoolState {
            servers: servers
                .iter()
                .map(|s| ServerStatus {
                    url: s.url.clone(),
                    healthy: true,
                    in_flight: 0,
                    peak_in_flight: 0,
                    answered: 0,
                    failed: 0,
                    last_error: None,
                })
                .collect(),
            next: 0,
        };
        let inner = Arc::new(PoolInner {
            servers,
            state: Mutex::new(state),
            changed: Condvar::new(),
            client: Some(client),
            config,
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("crow-infer-health".into())
            .spawn(move || probe_forever(weak))
            .map_err(remote_error)?;
        Ok(ServerPool { inner })
    }

    /// The configuration the pool was built from.
    pub fn config(&self) -> &RemoteConfig {
        &self.inner.config
    }

    /// Every server's state, in configuration order.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.inner.lock().servers.clone()
    }

    /// Requests the pool can have in flight at once (servers x `max_in_flight`).
    pub fn capacity(&self) -> usize {
        self.inner.servers.len() * self.inner.config.max_in_flight
    }

    /// Waits for room on a healthy server not in `tried`, least busy first; `None` at `deadline` or
    /// when every server not yet tried is unhealthy and stays so until then.
    fn acquire(&self, tried: &[bool], deadline: Instant) -> Result<Lease<'_>, String> {
        let inner = &*self.inner;
        let max = inner.config.max_in_flight;
        let mut state = inner.lock();
        loop {
            let n = state.servers.len();
            let start = state.next;
            let pick = (0..n)
                .map(|k| (start + k) % n)
                .filter(|&i| {
                    !tried[i] && state.servers[i].healthy && state.servers[i].in_flight < max
                })
                .min_by_key(|&i| state.servers[i].in_flight);
            if let Some(i) = pick {
                state.next = (i + 1) % n;
                let s = &mut state.servers[i];
                s.in_flight += 1;
                s.peak_in_flight = s.peak_in_flight.max(s.in_flight);
                metrics::gauge!(METRIC_IN_FLIGHT, "server" => s.url.clone())
                    .set(s.in_flight as f64);
                return Ok(Lease {
                    pool: inner,
                    index: i,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                let why: Vec<String> = state
                    .servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let what = if tried[i] {
                            "failed this request".to_owned()
                        } else if !s.healthy {
                            format!("unhealthy: {}", s.last_error.as_deref().unwrap_or("?"))
                        } else {
                            format!("{} in flight", s.in_flight)
                        };
                        format!("{} ({what})", s.url)
                    })
                    .collect();
                return Err(format!(
                    "no server could take the request: {}",
                    why.join("; ")
                ));
            }
            state = inner
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Posts a chat-completions request, on another server when one fails; returns the answer and the
    /// server that gave it.
    pub fn chat(&self, body: &Value) -> Result<(Value, String), InferenceError> {
        let inner = &*self.inner;
        let deadline = Instant::now() + Duration::from_millis(inner.config.timeout_ms.max(1));
        let mut tried = vec![false; inner.servers.len()];
        let mut errors = Vec::new();
        loop {
            let lease = match self.acquire(&tried, deadline) {
                Ok(lease) => lease,
                Err(why) if errors.is_empty() => return Err(remote_error(why)),
                Err(_) => return Err(remote_error(errors.join("; "))),
            };
            let i = lease.index;
            let server = &inner.servers[i];
            let outcome = self.attempt(server, body);
            drop(lease);
            match outcome {
                Attempt::Answer(reply) => {
                    let mut state = inner.lock();
                    state.servers[i].answered += 1;
                    return Ok((reply, server.url.clone()));
                }
                Attempt::Refused(why) => {
                    return Err(remote_error(format!("{}: {why}", server.url)));
                }
                Attempt::ServerFault(why) => {
                    inner.lock().servers[i].failed += 1;
                    inner.set_health(i, false, Some(why.clone()));
                    errors.push(format!("{}: {why}", server.url));
                    tried[i] = true;
                    if tried.iter().all(|t| *t) {
                        return Err(remote_error(errors.join("; ")));
                    }
                }
            }
        }
    }

    fn attempt(&self, server: &Server, body: &Value) -> Attempt {
        let mut request = self.inner.client().post(&server.chat).json(body);
        if let Some(key) = &self.inner.config.api_key {
            request = request.bearer_auth(key);
        }
        let count = |outcome: &'static str| {
            metrics::counter!(METRIC_REQUESTS, "server" => server.url.clone(), "outcome" => outcome)
                .increment(1);
        };
        let response = match request.send() {
            Ok(r) => r,
            Err(e) => {
                count("unreachable");
                return Attempt::ServerFault(e.to_string());
            }
        };
        let status = response.status();
        let text = match response.text() {
            Ok(t) => t,
            Err(e) => {
                count("unreachable");
                return Attempt::ServerFault(format!("reading the answer: {e}"));
            }
        };
        let excerpt: String = text.chars().take(300).collect();
        if status.as_u16() == 429 {
            count("overloaded");
            return Attempt::ServerFault(format!("HTTP {status}: {excerpt}"));
        }
        if status.is_server_error() {
            count("http_5xx");
            return Attempt::ServerFault(format!("HTTP {status}: {excerpt}"));
        }
        if !status.is_success() {
            count("http_4xx");
            return Attempt::Refused(format!("HTTP {status}: {excerpt}"));
        }
        match serde_json::from_str(&text) {
            Ok(reply) => {
                count("ok");
                Attempt::Answer(reply)
            }
            Err(e) => {
                count("http_5xx");
                Attempt::ServerFault(format!("answer is not JSON ({e}): {excerpt}"))
            }
        }
    }
}

/// One health probe: `GET {url}/models` must answer 2xx.
fn probe(inner: &PoolInner, i: usize) {
    let server = &inner.servers[i];
    let mut request = inner
        .client()
        .get(&server.models)
        .timeout(Duration::from_millis(
            inner.config.timeout_ms.clamp(1, 5_000),
        ));
    if let Some(key) = &inner.config.api_key {
        request = request.bearer_auth(key);
    }
    match request.send() {
        Ok(r) if r.status().is_success() => inner.set_health(i, true, None),
        Ok(r) => inner.set_health(i, false, Some(format!("health probe: HTTP {}", r.status()))),
        Err(e) => inner.set_health(i, false, Some(format!("health probe: {e}"))),
    }
}

/// The background prober: every server, every `health_interval_ms`, until the pool is dropped.
fn probe_forever(pool: Weak<PoolInner>) {
    loop {
        let interval = {
            let Some(inner) = pool.upgrade() else { return };
            for i in 0..inner.servers.len() {
                probe(&inner, i);
            }
            Duration::from_millis(inner.config.health_interval_ms.max(50))
        };
        // Short sleeps, so a dropped pool's thread ends soon.
        let until = Instant::now() + interval;
        while Instant::now() < until {
            if pool.strong_count() == 0 {
                return;
            }
            // The probe's own thread, not an async worker.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(50).min(interval));
        }
    }
}

/// The text of `choices[0].message.content`.
fn content(reply: &Value) -> Result<String, InferenceError> {
    reply["choices"][0]["message"]["content"]
        .as_str()
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| remote_error("the answer has no choices[0].message.content"))
}

/// Describes frames through the pool's chat-completions endpoints. One per describer slot, all
/// sharing one pool.
pub struct RemoteDescriber {
    pool: ServerPool,
    name: String,
}

impl RemoteDescriber {
    /// A describer on `pool` (no request is made until the first frame).
    pub fn new(pool: ServerPool) -> RemoteDescriber {
        RemoteDescriber {
            name: format!("remote:{}", pool.config().model),
            pool,
        }
    }
}

impl FrameDescriber for RemoteDescriber {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&mut self, input: DescribeInput<'_>) -> Result<Description, InferenceError> {
        let config = self.pool.config();
        let jpeg = encode_jpeg(input.image, config.jpeg_quality)?;
        let image_url = format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&jpeg)
        );
        let prompt = config.prompt.as_deref().unwrap_or(DEFAULT_VISION_PROMPT);
        let body = json!({
            "model": config.model,
            "max_tokens": config.max_tokens,
            "temperature": 0,
            "messages": [{
                "role": "user",
                "content": [
                    { "type": "image_url", "image_url": { "url": image_url } },
                    { "type": "text", "text": prompt },
                ],
            }],
        });
        let start = Instant::now();
        let (reply, server) = self.pool.chat(&body)?;
        let text = content(&reply)?;
        Ok(Description {
            text: if text.is_empty() {
                "(the model returned no text)".into()
            } else {
                text
            },
            // A generative model gives no calibrated confidence; 0.5 says "unknown".
            confidence: 0.5,
            tags: vec!["vision-model".to_owned()],
            details: json!({
                "server": server,
                "model": reply["model"],
                "prompt_tokens": reply["usage"]["prompt_tokens"],
                "generated_tokens": reply["usage"]["completion_tokens"],
                "request_ms": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                "jpeg_bytes": jpeg.len(),
            }),
        })
    }
}

/// Text tasks on the pool: the answer's JSON Schema goes as `response_format` (`json_schema`, strict),
/// and the answer is checked against the shape by [`crate::text::parse_answer`] whatever the server did.
#[derive(Debug, Clone)]
pub struct RemoteText {
    pool: ServerPool,
}

impl RemoteText {
    /// Text tasks on `pool`.
    pub fn new(pool: ServerPool) -> RemoteText {
        RemoteText { pool }
    }

    /// The pool it uses.
    pub fn pool(&self) -> &ServerPool {
        &self.pool
    }
}

impl TextGenerator for RemoteText {
    fn name(&self) -> String {
        format!("remote:{}", self.pool.config().model)
    }

    fn generate_json(
        &self,
        user: &str,
        shape: &JsonShape,
    ) -> Result<(String, GenerationStats), InferenceError> {
        // The compact answer's longest length and some room for whitespace (servers' schema grammars
        // allow it); an answer cut off anyway fails the check and is not used.
        let max_tokens = shape.max_chars() + 64;
        let body = json!({
            "model": self.pool.config().model,
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{ "role": "user", "content": user }],
            "response_format": {
                "type": "json_schema",
                "json_schema": { "name": "crow_answer", "strict": true, "schema": shape.to_json_schema() },
            },
        });
        let start = Instant::now();
        let (reply, _) = self.pool.chat(&body)?;
        let text = content(&reply)?;
        let tokens = |k: &str| reply["usage"][k].as_u64().unwrap_or(0) as usize;
        Ok((
            text,
            GenerationStats {
                prompt_tokens: tokens("prompt_tokens"),
                image_tokens: 0,
                generated_tokens: tokens("completion_tokens"),
                prompt_ms: 0.0,
                generate_ms: start.elapsed().as_secs_f64() * 1000.0,
            },
        ))
    }
}
