//! `crow serve --role infer`: an inference server with the OpenAI-compatible chat-completions API over
//! the node's llama.cpp models, for other nodes' `remote` describers and text tasks
//! ([`crow_inference::remote`]). Run it on the machines with the accelerators (llama.cpp built with the
//! matching backend), next to — or instead of — vLLM, SGLang or `llama-server`.
//!
//! Routes: `POST /v1/chat/completions` (a user turn of text and at most one image as a data URL;
//! `response_format` `json_schema` / `json_object` constrain a text answer through llama.cpp's own
//! schema-to-grammar converter), `GET /v1/models`, `GET /health`. At most `infer.slots` requests generate
//! at once, `infer.queue` more wait, the rest get HTTP 429 so that a client tries another server. Errors
//! are OpenAI-style `{"error": {"message", "type"}}` objects.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use crow_inference::llama::{
    json_schema_grammar, LlamaSettings, LlamaVisionDescriber, TextModel, VisionModel,
};
use crow_inference::{decode_frame, FrameLimits, ImageFormat};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::PipelineConfig;

/// Requests answered, by kind (`text`, `image`) and outcome (`ok`, `bad_request`, `overloaded`, `failed`).
pub const METRIC_REQUESTS: &str = "crow_infer_requests_total";
/// Requests generating now.
pub const METRIC_RUNNING: &str = "crow_infer_running";

/// `[infer]`: the inference node (`crow serve --role infer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferConfig {
    /// Requests generating at once (each has its own llama.cpp context).
    pub slots: usize,
    /// Requests that may wait for a slot; beyond them, HTTP 429 (the client tries another server).
    pub queue: usize,
    /// Bearer token every request must carry (`CROW_INFER__API_KEY`). Required when listening beyond
    /// loopback, unless `--dev`.
    pub api_key: Option<String>,
    /// Most tokens one request may generate (a request asking for more is capped).
    pub max_tokens: u32,
}

impl Default for InferConfig {
    fn default() -> Self {
        InferConfig {
            slots: 2,
            queue: 16,
            api_key: None,
            max_tokens: 1024,
        }
    }
}

/// Why the inference node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Neither a vision model nor a text model is there.
    #[error("no model to serve: configure pipeline.llama (model + mmproj) and/or analysis.model (scripts/setup-models.sh installs the defaults)")]
    NoModel,
    /// A model did not load.
    #[error(transparent)]
    Model(#[from] crow_inference::llama::LlamaError),
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
}

/// The loaded models and the admission state of one inference node.
pub struct InferNode {
    name: String,
    text: Option<Arc<TextModel>>,
    vision: Option<Arc<VisionModel>>,
    describers: Mutex<Vec<LlamaVisionDescriber>>,
    slots: Semaphore,
    admitted: AtomicUsize,
    config: InferConfig,
}

impl std::fmt::Debug for InferNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferNode")
            .field("name", &self.name)
            .field("text", &self.text.is_some())
            .field("vision", &self.vision.is_some())
            .finish()
    }
}

impl InferNode {
    /// Loads the vision model (`pipeline.llama`, when both files exist) and the text model
    /// (`analysis.model`, when it exists; the vision model's language model when it is the same file),
    /// served as `infer` says. Blocking: call it off the async runtime.
    pub fn load(infer: &InferConfig, pipeline: &PipelineConfig) -> Result<InferNode, InferError> {
        let infer = infer.clone();
        if infer.slots == 0 {
            return Err(InferError::Config("infer.slots must be at least 1".into()));
        }
        let llama = &pipeline.llama;
        let vision = if llama.model.exists() && llama.mmproj.exists() {
            let settings = LlamaSettings {
                threads: llama.threads,
                n_ctx: llama.n_ctx,
                max_tokens: llama.max_tokens,
            };
            Some(VisionModel::load(
                &llama.model,
                &llama.mmproj,
                llama.prompt.clone(),
                settings,
            )?)
        } else {
            None
        };
        let analysis = &pipeline.analysis;
        let text = match (&analysis.model, &vision) {
            (Some(path), Some(v)) if *path == llama.model => Some(Arc::clone(v.text())),
            (Some(path), _) if path.exists() => Some(TextModel::load(
                path,
                LlamaSettings {
                    threads: analysis.threads,
                    n_ctx: analysis.n_ctx,
                    max_tokens: 64,
                },
            )?),
            _ => None,
        };
        let describers = match &vision {
            Some(v) => (0..infer.slots)
                .map(|_| v.describer())
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let name = text
            .as_ref()
            .map(|t| t.path())
            .or(vision.as_ref().map(|v| v.text().path()))
            .ok_or(InferError::NoModel)?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "crow".into());
        Ok(InferNode {
            name,
            text,
            vision,
            describers: Mutex::new(describers),
            slots: Semaphore::new(infer.slots),
            admitted: AtomicUsize::new(0),
            config: infer,
        })
    }

    /// The model name reported by `/v1/models` and in answers.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether image requests are served.
    pub fn has_vision(&self) -> bool {
        self.vision.is_some()
    }

    /// Whether text requests are served.
    pub fn has_text(&self) -> bool {
        self.text.is_some()
    }
}

/// The HTTP routes of an inference node.
pub fn router(node: Arc<InferNode>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        // Frames arrive base64-encoded inside the JSON body.
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
        .with_state(node)
}

/// An OpenAI-style error answer.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind}});
        (self.status, Json(body)).into_response()
    }
}

fn authorize(node: &InferNode, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &node.config.api_key else {
        return Ok(());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| {
        use subtle::ConstantTimeEq as _;
        g.as_bytes().ct_eq(key.as_bytes()).into()
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            message: "missing or wrong bearer token".into(),
        })
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn models(State(node): State<Arc<InferNode>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&node, &headers) {
        return e.into_response();
    }
    Json(json!({
        "object": "list",
        "data": [{"id": node.name, "object": "model", "owned_by": "crow",
                  "capabilities": {"vision": node.has_vision(), "text": node.has_text()}}],
    }))
    .into_response()
}

/// What a request asks for, once read.
struct Task {
    prompt: String,
    image: Option<Vec<u8>>,
    image_format: ImageFormat,
    grammar: Option<String>,
    max_tokens: u32,
}

/// Reads an OpenAI chat-completions body: the messages' text joined into one turn, at most one image.
fn read_request(node: &InferNode, body: &Value) -> Result<Task, ApiError> {
    if body["stream"].as_bool() == Some(true) {
        return Err(ApiError::bad("stream is not supported"));
    }
    let messages = body["messages"]
        .as_array()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad("messages must be a non-empty array"))?;
    let mut texts = Vec::new();
    let mut image = None;
    for (i, m) in messages.iter().enumerate() {
        match m["role"].as_str() {
            Some("system" | "user" | "developer") => {}
            Some("assistant") => {
                return Err(ApiError::bad(
                    "assistant turns are not supported: send one request per question",
                ))
            }
            _ => {
                return Err(ApiError::bad(format!(
                    "messages[{i}].role is missing or unknown"
                )))
            }
        }
        match &m["content"] {
            Value::String(s) => texts.push(s.clone()),
            Value::Array(parts) => {
                for (j, part) in parts.iter().enumerate() {
                    match part["type"].as_str() {
                        Some("text") => texts.push(part["text"].as_str().unwrap_or("").to_owned()),
                        Some("image_url") => {
                            if image.is_some() {
                                return Err(ApiError::bad("at most one image per request"));
                            }
                            let url = part["image_url"]["url"]
                                .as_str()
                                .or(part["image_url"].as_str())
                                .ok_or_else(|| {
                                    ApiError::bad(format!(
                                        "messages[{i}].content[{j}].image_url.url is missing"
                                    ))
                                })?;
                            image = Some(data_url(url)?);
                        }
                        _ => {
                            return Err(ApiError::bad(format!(
                                "messages[{i}].content[{j}].type must be text or image_url"
                            )))
                        }
                    }
                }
            }
            _ => {
                return Err(ApiError::bad(format!(
                    "messages[{i}].content must be a string or an array of parts"
                )))
            }
        }
    }
    let prompt = texts.join("\n");
    let grammar = match body["response_format"]["type"].as_str() {
        None | Some("text") => None,
        Some("json_schema") => {
            let schema = &body["response_format"]["json_schema"]["schema"];
            if !schema.is_object() {
                return Err(ApiError::bad(
                    "response_format.json_schema.schema must be a JSON Schema object",
                ));
            }
            Some(schema_grammar(schema)?)
        }
        Some("json_object") => Some(schema_grammar(&json!({"type": "object"}))?),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "response_format.type {other:?} is not supported"
            )))
        }
    };
    if image.is_some() && grammar.is_some() {
        return Err(ApiError::bad(
            "response_format is supported for text requests only",
        ));
    }
    let requested = body["max_completion_tokens"]
        .as_u64()
        .or(body["max_tokens"].as_u64())
        .unwrap_or(256);
    let (image, image_format) = match image {
        Some((bytes, format)) => (Some(bytes), format),
        None => (None, ImageFormat::Jpeg),
    };
    if image.is_some() && node.vision.is_none() {
        return Err(ApiError::bad(
            "this node has no vision model (pipeline.llama model + mmproj)",
        ));
    }
    if image.is_none() && node.text.is_none() {
        return Err(ApiError::bad(
            "this node has no text model (analysis.model)",
        ));
    }
    Ok(Task {
        prompt,
        image,
        image_format,
        grammar,
        max_tokens: requested.clamp(1, u64::from(node.config.max_tokens)) as u32,
    })
}

fn schema_grammar(schema: &Value) -> Result<String, ApiError> {
    json_schema_grammar(&schema.to_string())
        .map_err(|e| ApiError::bad(format!("response_format schema: {e}")))
}

/// Decodes `data:image/jpeg;base64,...` (or png).
fn data_url(url: &str) -> Result<(Vec<u8>, ImageFormat), ApiError> {
    let rest = url.strip_prefix("data:").ok_or_else(|| {
        ApiError::bad("image_url must be a data: URL (this server fetches nothing)")
    })?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| ApiError::bad("image_url data URL has no ','"))?;
    let format = match meta {
        "image/jpeg;base64" | "image/jpg;base64" => ImageFormat::Jpeg,
        "image/png;base64" => ImageFormat::Png,
        other => {
            return Err(ApiError::bad(format!(
                "image_url data URL type {other:?}: send image/jpeg or image/png, base64"
            )))
        }
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| ApiError::bad(format!("image_url base64: {e}")))?;
    Ok((bytes, format))
}

async fn chat(
    State(node): State<Arc<InferNode>>,
    headers: HeaderMap,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(e) = authorize(&node, &headers) {
        return e.into_response();
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return ApiError::bad(format!("body: {}", e.body_text())).into_response(),
    };
    let count = |kind: &'static str, outcome: &'static str| {
        metrics::counter!(METRIC_REQUESTS, "kind" => kind, "outcome" => outcome).increment(1);
    };
    let task = match read_request(&node, &body) {
        Ok(t) => t,
        Err(e) => {
            count("unknown", "bad_request");
            return e.into_response();
        }
    };
    let kind = if task.image.is_some() {
        "image"
    } else {
        "text"
    };
    // Admission: slots + queue at most; the rest are told to go elsewhere.
    let limit = node.config.slots + node.config.queue;
    if node.admitted.fetch_add(1, Ordering::SeqCst) >= limit {
        node.admitted.fetch_sub(1, Ordering::SeqCst);
        count(kind, "overloaded");
        return ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "overloaded",
            message: format!("{limit} requests are running or waiting; try another server"),
        }
        .into_response();
    }
    struct Admitted<'a>(&'a AtomicUsize);
    impl Drop for Admitted<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _admitted = Admitted(&node.admitted);
    let Ok(_permit) = node.slots.acquire().await else {
        return ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            message: "shutting down".into(),
        }
        .into_response();
    };
    metrics::gauge!(METRIC_RUNNING).increment(1.0);
    let worker = Arc::clone(&node);
    let max_tokens = task.max_tokens;
    let result = tokio::task::spawn_blocking(move || run(&worker, task)).await;
    metrics::gauge!(METRIC_RUNNING).decrement(1.0);
    let (text, prompt_tokens, generated) = match result {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            count(
                kind,
                if e.status.is_client_error() {
                    "bad_request"
                } else {
                    "failed"
                },
            );
            return e.into_response();
        }
        Err(e) => {
            count(kind, "failed");
            let id = crow_actors::log_internal("inference", e);
            return ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "server_error",
                message: format!("inference failed (correlation id {id})"),
            }
            .into_response();
        }
    };
    count(kind, "ok");
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Json(json!({
        "id": format!("chatcmpl-{}", uuid_like()),
        "object": "chat.completion",
        "created": created,
        "model": node.name,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": if generated as u32 >= max_tokens { "length" } else { "stop" },
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": generated,
            "total_tokens": prompt_tokens + generated,
        },
    }))
    .into_response()
}

/// A unique-enough id for an answer (time and a counter).
fn uuid_like() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos:x}{:04x}",
        NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

/// Runs one admitted request on a worker thread: (answer, prompt tokens, generated tokens).
fn run(node: &InferNode, task: Task) -> Result<(String, usize, usize), ApiError> {
    let failed = |e: &dyn std::fmt::Display| {
        let id = crow_actors::log_internal("inference", e);
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: format!("inference failed (correlation id {id})"),
        }
    };
    if let Some(bytes) = task.image {
        let frame = decode_frame(&bytes, task.image_format, FrameLimits::DEFAULT)
            .map_err(|e| ApiError::bad(format!("image: {e}")))?;
        // A slot permit is held, so a describer is free.
        let mut describer = node
            .describers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .ok_or_else(|| failed(&"no free describer"))?;
        let result = describer.describe_image_with(&frame.image, &task.prompt, task.max_tokens);
        node.describers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(describer);
        let (text, stats) = result.map_err(|e| fits_or_failed(&e.to_string(), failed))?;
        return Ok((text, stats.prompt_tokens, stats.generated_tokens));
    }
    let model = node.text.as_ref().ok_or_else(|| failed(&"no text model"))?;
    let (text, stats) = model
        .complete(
            &model.chat_prompt(&task.prompt),
            task.grammar.as_deref(),
            task.max_tokens,
        )
        .map_err(|e| fits_or_failed(&e.to_string(), failed))?;
    Ok((
        text.trim().to_owned(),
        stats.prompt_tokens,
        stats.generated_tokens,
    ))
}

/// A prompt that does not fit the context is the caller's problem (400); anything else is ours.
fn fits_or_failed(message: &str, failed: impl Fn(&dyn std::fmt::Display) -> ApiError) -> ApiError {
    if message.contains("exceed n_ctx") {
        ApiError::bad(message.to_owned())
    } else {
        failed(&message)
    }
}
