//! A describer that calls an OpenAI-compatible chat-completions server with the frame as an image
//! (llama.cpp's `llama-server`, vLLM, ...), so inference can move to GPU machines without changing the
//! pipeline: each describer slot is one request in flight.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use crate::describer::DEFAULT_VISION_PROMPT;
use crate::describer::{DescribeInput, Description, FrameDescriber};
use crate::frame::encode_jpeg;
use crate::InferenceError;

/// Where and how to call the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Base URL of the OpenAI-compatible API, e.g. `http://gpu-box:8080/v1`.
    pub url: String,
    /// Model name sent with each request (servers that host one model ignore it).
    pub model: String,
    /// Bearer token, if the server wants one.
    pub api_key: Option<String>,
    /// Instruction sent with every frame; `None` uses crow's default.
    pub prompt: Option<String>,
    /// Most tokens generated per frame.
    pub max_tokens: u32,
    /// Per-request timeout, ms.
    pub timeout_ms: u64,
    /// JPEG quality of the image sent (1..=100).
    pub jpeg_quality: i32,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            url: "http://127.0.0.1:8080/v1".into(),
            model: "default".into(),
            api_key: None,
            prompt: None,
            max_tokens: 96,
            timeout_ms: 60_000,
            jpeg_quality: 85,
        }
    }
}

/// Describes frames through a remote chat-completions endpoint. One per slot.
pub struct RemoteDescriber {
    client: reqwest::blocking::Client,
    endpoint: String,
    name: String,
    config: RemoteConfig,
}

fn remote_error(message: impl std::fmt::Display) -> InferenceError {
    InferenceError::Model(format!("remote describer: {message}"))
}

impl RemoteDescriber {
    /// A describer for `config` (no request is made until the first frame).
    pub fn new(config: RemoteConfig) -> Result<RemoteDescriber, InferenceError> {
        let base = config.url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(remote_error(format!(
                "url {:?} must start with http:// or https://",
                config.url
            )));
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .build()
            .map_err(remote_error)?;
        Ok(RemoteDescriber {
            client,
            endpoint: format!("{base}/chat/completions"),
            name: format!("remote:{}", config.model),
            config,
        })
    }
}

impl FrameDescriber for RemoteDescriber {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&mut self, input: DescribeInput<'_>) -> Result<Description, InferenceError> {
        let jpeg = encode_jpeg(input.image, self.config.jpeg_quality)?;
        let image_url = format!(
            "data:image/jpeg;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&jpeg)
        );
        let prompt = self
            .config
            .prompt
            .as_deref()
            .unwrap_or(DEFAULT_VISION_PROMPT);
        let body = json!({
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "temperature": 0,
            "messages": [{
                "role": "user",
                "content": [
                    { "type": "image_url", "image_url": { "url": image_url } },
                    { "type": "text", "text": prompt },
                ],
            }],
        });
        let mut request = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let start = Instant::now();
        let response = request.send().map_err(remote_error)?;
        let status = response.status();
        let text = response.text().map_err(remote_error)?;
        if !status.is_success() {
            let excerpt: String = text.chars().take(300).collect();
            return Err(remote_error(format!("HTTP {status}: {excerpt}")));
        }
        let reply: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| remote_error(format!("response is not JSON: {e}")))?;
        let content = reply["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| remote_error("response has no choices[0].message.content"))?
            .trim()
            .to_owned();
        Ok(Description {
            text: if content.is_empty() {
                "(the model returned no text)".into()
            } else {
                content
            },
            // A generative model gives no calibrated confidence; 0.5 says "unknown".
            confidence: 0.5,
            tags: vec!["vision-model".to_owned()],
            details: json!({
                "endpoint": self.endpoint,
                "model": reply["model"],
                "prompt_tokens": reply["usage"]["prompt_tokens"],
                "generated_tokens": reply["usage"]["completion_tokens"],
                "request_ms": (start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
                "jpeg_bytes": jpeg.len(),
            }),
        })
    }
}
