//! llama.cpp through `llama-cpp-2`: a vision describer on the multimodal (`mtmd`) path and text generation
//! constrained to JSON by a GBNF grammar.
//!
//! Files are checked with crow's own GGUF reader before llama.cpp loads them (missing file, not GGUF,
//! projector that does not fit the text model), because some llama.cpp failures abort the process.
//! Each call creates its own llama context (milliseconds, next to image encoding and generation), sized
//! from the tokenized input so that `n_ubatch` covers the image tokens — llama.cpp aborts on Gemma 3's
//! non-causal image decode otherwise.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::mtmd::{
    self, MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputChunkType, MtmdInputText,
};
use llama_cpp_2::sampling::LlamaSampler;
use opencv::core::Mat;
use opencv::imgproc;
use opencv::prelude::*;
use serde_json::json;

use crate::describer::{DescribeInput, Description, FrameDescriber};
use crate::gguf::{read_header, GgufError};
use crate::grammar::JsonShape;
pub use crate::text::{
    phrasing_shape, product_match_shape, CatalogProduct, GenerationStats, PhrasedStatement,
    Phrasing, ProductMatch, ProductProposal, TextGenerator, MAX_CITED_FRAMES, MAX_MATCHES,
    MAX_QUOTE_CHARS, MAX_STATEMENTS,
};
use crate::{cv, InferenceError};

/// What can go wrong with llama.cpp models. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    /// The model file does not exist.
    #[error("model file {path} does not exist (run scripts/setup-models.sh, or fix the path in the config)")]
    Missing {
        /// Path given.
        path: PathBuf,
    },
    /// The file is not a GGUF model.
    #[error("{path} is not a usable GGUF file: {source}")]
    NotGguf {
        /// Path given.
        path: PathBuf,
        /// What the reader found.
        source: GgufError,
    },
    /// A file of the wrong kind (e.g. a projector where a language model is expected).
    #[error("{path} is a {found} GGUF, expected {expected}")]
    WrongKind {
        /// Path given.
        path: PathBuf,
        /// Architecture found.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The projector's output size differs from the text model's embedding size.
    #[error("projector {mmproj} produces {projection_dim}-dim embeddings but {model} has n_embd {n_embd}: use the mmproj made for this model")]
    ProjectorMismatch {
        /// Projector path.
        mmproj: PathBuf,
        /// Model path.
        model: PathBuf,
        /// Projector output size.
        projection_dim: i128,
        /// Model embedding size.
        n_embd: i32,
    },
    /// llama.cpp refused to load or initialise something.
    #[error("llama.cpp could not {what}: {reason}")]
    Llama {
        /// What crow asked for.
        what: &'static str,
        /// llama.cpp's message.
        reason: String,
    },
}

impl From<LlamaError> for InferenceError {
    fn from(e: LlamaError) -> Self {
        InferenceError::Model(e.to_string())
    }
}

fn llama(what: &'static str) -> impl FnOnce(&dyn std::fmt::Display) -> LlamaError {
    move |e| LlamaError::Llama {
        what,
        reason: e.to_string(),
    }
}

/// The process-wide llama.cpp backend (llama.cpp allows one).
fn backend() -> Result<&'static LlamaBackend, LlamaError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            crate::llama_log::install();
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlamaError::Llama {
            what: "initialise its backend",
            reason: e.clone(),
        })
}

/// Checks that `path` is a GGUF file whose architecture is (or, with `negate`, is not) `clip`.
fn check_gguf(path: &Path, want_projector: bool) -> Result<crate::gguf::GgufHeader, LlamaError> {
    if !path.is_file() {
        return Err(LlamaError::Missing {
            path: path.to_owned(),
        });
    }
    let header = read_header(path).map_err(|source| LlamaError::NotGguf {
        path: path.to_owned(),
        source,
    })?;
    let arch = header
        .str("general.architecture")
        .unwrap_or("unknown")
        .to_owned();
    let is_projector = arch == "clip";
    if is_projector != want_projector {
        return Err(LlamaError::WrongKind {
            path: path.to_owned(),
            found: arch,
            expected: if want_projector {
                "multimodal projector (architecture clip)"
            } else {
                "language model"
            },
        });
    }
    Ok(header)
}

/// The GBNF grammar llama.cpp derives from a JSON Schema (the converter `llama-server` uses for
/// `response_format`), so that a constrained answer validates against the schema.
pub fn json_schema_grammar(schema: &str) -> Result<String, LlamaError> {
    llama_cpp_2::json_schema_to_grammar(schema).map_err(|e| llama("convert the JSON Schema")(&e))
}

/// Settings of a llama.cpp model.
#[derive(Debug, Clone)]
pub struct LlamaSettings {
    /// CPU threads per call.
    pub threads: i32,
    /// Context size in tokens.
    pub n_ctx: u32,
    /// Most tokens generated per call.
    pub max_tokens: u32,
}

impl Default for LlamaSettings {
    fn default() -> Self {
        LlamaSettings {
            threads: 2,
            n_ctx: 2048,
            max_tokens: 64,
        }
    }
}

/// A loaded language model, shared by every slot.
pub struct TextModel {
    model: LlamaModel,
    path: PathBuf,
    architecture: String,
    settings: LlamaSettings,
}

impl std::fmt::Debug for TextModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextModel")
            .field("path", &self.path)
            .field("architecture", &self.architecture)
            .finish()
    }
}

impl TextModel {
    /// Loads a GGUF language model (checked first).
    pub fn load(
        path: impl AsRef<Path>,
        settings: LlamaSettings,
    ) -> Result<Arc<TextModel>, LlamaError> {
        let path = path.as_ref().to_owned();
        let header = check_gguf(&path, false)?;
        let model = LlamaModel::load_from_file(backend()?, &path, &LlamaModelParams::default())
            .map_err(|e| llama("load the model")(&e))?;
        Ok(Arc::new(TextModel {
            model,
            path,
            architecture: header
                .str("general.architecture")
                .unwrap_or("unknown")
                .to_owned(),
            settings,
        }))
    }

    /// The model's embedding size.
    pub fn n_embd(&self) -> i32 {
        self.model.n_embd()
    }

    /// Path it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wraps a user turn in the model's chat template; Gemma's turn format when the GGUF carries none.
    pub fn chat_prompt(&self, user: &str) -> String {
        if let Ok(template) = self.model.chat_template(None) {
            if let Ok(message) = LlamaChatMessage::new("user".into(), user.into()) {
                if let Ok(prompt) = self.model.apply_chat_template(&template, &[message], true) {
                    return prompt;
                }
            }
        }
        if self.architecture.starts_with("gemma") {
            format!("<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n")
        } else {
            format!("USER: {user}\nASSISTANT: ")
        }
    }

    fn context_params(&self, n_batch: u32) -> LlamaContextParams {
        LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.settings.n_ctx.max(n_batch)))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_threads(self.settings.threads)
            .with_n_threads_batch(self.settings.threads)
    }

    /// Generates from an already-evaluated context until end of generation or `max_tokens`.
    fn generate(
        &self,
        ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
        mut n_past: i32,
        mut sampler: LlamaSampler,
        max_tokens: u32,
    ) -> Result<(String, usize), LlamaError> {
        let vocab = self.model.vocab();
        let mut batch = LlamaBatch::new(1, 1);
        let mut bytes = Vec::new();
        let mut generated = 0;
        for _ in 0..max_tokens {
            // `sample` also accepts the token into the sampler chain (a grammar advances its state); accepting
            // it again would corrupt the grammar's stacks and abort inside llama.cpp.
            let token = sampler.sample(ctx, -1);
            if vocab.is_eog(token) {
                break;
            }
            generated += 1;
            bytes.extend(vocab.token_to_piece(token, false, None));
            batch.clear();
            batch
                .add(token, n_past, &[0], true)
                .map_err(|e| llama("batch a token")(&e))?;
            n_past += 1;
            ctx.decode(&mut batch).map_err(|e| llama("decode")(&e))?;
        }
        Ok((String::from_utf8_lossy(&bytes).into_owned(), generated))
    }

    /// Runs a text prompt (already in chat format) with an optional GBNF grammar; greedy decoding.
    pub fn complete(
        &self,
        prompt: &str,
        grammar: Option<&str>,
        max_tokens: u32,
    ) -> Result<(String, GenerationStats), LlamaError> {
        let tokens = self.model.vocab().tokenize(prompt.as_bytes(), true, true);
        let n_batch = (tokens.len() as u32).max(64);
        if tokens.len() as u32 + max_tokens > self.settings.n_ctx.max(n_batch) {
            return Err(LlamaError::Llama {
                what: "fit the prompt",
                reason: format!(
                    "{} prompt tokens + {max_tokens} exceed n_ctx {}",
                    tokens.len(),
                    self.settings.n_ctx
                ),
            });
        }
        let mut ctx = self
            .model
            .new_context(backend()?, self.context_params(n_batch))
            .map_err(|e| llama("create a context")(&e))?;
        let start = Instant::now();
        let mut batch = LlamaBatch::new(tokens.len(), 1);
        for (i, t) in tokens.iter().enumerate() {
            batch
                .add(*t, i as i32, &[0], i + 1 == tokens.len())
                .map_err(|e| llama("batch the prompt")(&e))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| llama("decode the prompt")(&e))?;
        let prompt_ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut samplers = Vec::new();
        if let Some(g) = grammar {
            samplers.push(
                LlamaSampler::grammar(&self.model, g, "root")
                    .map_err(|e| llama("parse the grammar")(&e))?,
            );
        }
        samplers.push(LlamaSampler::greedy());
        let start = Instant::now();
        let (text, generated) = self.generate(
            &mut ctx,
            tokens.len() as i32,
            LlamaSampler::chain_simple(samplers),
            max_tokens,
        )?;
        Ok((
            text,
            GenerationStats {
                prompt_tokens: tokens.len(),
                image_tokens: 0,
                generated_tokens: generated,
                prompt_ms,
                generate_ms: start.elapsed().as_secs_f64() * 1000.0,
            },
        ))
    }
}

impl TextGenerator for TextModel {
    fn name(&self) -> String {
        format!("llama:{}", file_name(&self.path))
    }

    /// The user turn in the model's chat template, constrained by the GBNF grammar of `shape`, greedy.
    fn generate_json(
        &self,
        user: &str,
        shape: &JsonShape,
    ) -> Result<(String, GenerationStats), InferenceError> {
        Ok(self.complete(
            &self.chat_prompt(user),
            Some(&shape.to_gbnf()),
            // Room for the longest answer the grammar allows, so it always finishes.
            self.settings.max_tokens.max(shape.max_chars() as u32),
        )?)
    }
}

/// A text model plus its multimodal projector: the shared part of the vision describer.
#[derive(Debug)]
pub struct VisionModel {
    text: Arc<TextModel>,
    mmproj: PathBuf,
    prompt: String,
}

pub use crate::describer::DEFAULT_VISION_PROMPT;

impl VisionModel {
    /// Loads the language model and checks that the projector fits it. `prompt` defaults to
    /// [`DEFAULT_VISION_PROMPT`].
    pub fn load(
        model: impl AsRef<Path>,
        mmproj: impl AsRef<Path>,
        prompt: Option<String>,
        settings: LlamaSettings,
    ) -> Result<Arc<VisionModel>, LlamaError> {
        let mmproj = mmproj.as_ref().to_owned();
        let header = check_gguf(&mmproj, true)?;
        let text = TextModel::load(model, settings)?;
        if let Some(projection_dim) = header.int("clip.vision.projection_dim") {
            if projection_dim != i128::from(text.n_embd()) {
                return Err(LlamaError::ProjectorMismatch {
                    mmproj,
                    model: text.path.clone(),
                    projection_dim,
                    n_embd: text.n_embd(),
                });
            }
        }
        let vision = VisionModel {
            text,
            mmproj,
            prompt: prompt.unwrap_or_else(|| DEFAULT_VISION_PROMPT.to_owned()),
        };
        // Initialise once now, so a projector llama.cpp rejects fails at start-up rather than per frame.
        vision.describer()?;
        Ok(Arc::new(vision))
    }

    /// The language model under the projector.
    pub fn text(&self) -> &Arc<TextModel> {
        &self.text
    }

    /// A describer for one slot (its own mtmd context).
    pub fn describer(&self) -> Result<LlamaVisionDescriber, LlamaError> {
        let params = MtmdContextParams {
            use_gpu: false,
            print_timings: false,
            n_threads: self.text.settings.threads,
            media_marker: std::ffi::CString::new(mtmd::mtmd_default_marker())
                .map_err(|e| llama("set the media marker")(&e))?,
            ..MtmdContextParams::default()
        };
        let path = self.mmproj.to_str().ok_or_else(|| LlamaError::Missing {
            path: self.mmproj.clone(),
        })?;
        let ctx = MtmdContext::init_from_file(path, &self.text.model, &params)
            .map_err(|e| llama("initialise the projector")(&e))?;
        if !ctx.support_vision() {
            return Err(LlamaError::WrongKind {
                path: self.mmproj.clone(),
                found: "non-vision projector".into(),
                expected: "vision projector",
            });
        }
        Ok(LlamaVisionDescriber {
            name: format!("llama-mtmd:{}", file_name(&self.text.path)),
            model: Arc::clone(&self.text),
            prompt: self.prompt.clone(),
            mtmd: ctx,
        })
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Describes frames with a llama.cpp vision model through mtmd. One per slot.
pub struct LlamaVisionDescriber {
    name: String,
    model: Arc<TextModel>,
    prompt: String,
    mtmd: MtmdContext,
}

impl LlamaVisionDescriber {
    /// Describes an image (BGR Mat) with the configured prompt; returns the text and token
    /// counts/timings.
    pub fn describe_image(
        &mut self,
        image: &Mat,
    ) -> Result<(String, GenerationStats), InferenceError> {
        let prompt = self.prompt.clone();
        let max_tokens = self.model.settings.max_tokens;
        self.describe_image_with(image, &prompt, max_tokens)
    }

    /// Answers `prompt` about an image (BGR Mat), generating at most `max_tokens`.
    pub fn describe_image_with(
        &mut self,
        image: &Mat,
        prompt: &str,
        max_tokens: u32,
    ) -> Result<(String, GenerationStats), InferenceError> {
        let mut rgb = Mat::default();
        imgproc::cvt_color(image, &mut rgb, imgproc::COLOR_BGR2RGB, 0)
            .map_err(cv("converting to RGB"))?;
        let data = rgb.data_bytes().map_err(cv("reading pixels"))?;
        let bitmap = MtmdBitmap::from_image_data(rgb.cols() as u32, rgb.rows() as u32, data)
            .map_err(|e| llama("take the image")(&e))?;
        let user = format!("{}\n{prompt}", mtmd::mtmd_default_marker());
        let text = MtmdInputText {
            text: self.model.chat_prompt(&user),
            add_special: true,
            parse_special: true,
        };
        let chunks = self
            .mtmd
            .tokenize(text, &[&bitmap])
            .map_err(|e| llama("tokenize the image prompt")(&e))?;
        let (mut image_tokens, mut largest) = (0, 0);
        for i in 0..chunks.len() {
            if let Some(chunk) = chunks.get(i) {
                if chunk.chunk_type() == MtmdInputChunkType::Image {
                    image_tokens += chunk.n_tokens();
                }
                largest = largest.max(chunk.n_tokens());
            }
        }
        // Image tokens are decoded in one non-causal batch: n_batch and n_ubatch must hold them all.
        let n_batch = (largest as u32).max(64);
        if chunks.total_positions() as u32 + max_tokens > self.model.settings.n_ctx.max(n_batch) {
            return Err(LlamaError::Llama {
                what: "fit the image prompt",
                reason: format!(
                    "{} positions + {max_tokens} exceed n_ctx {}",
                    chunks.total_positions(),
                    self.model.settings.n_ctx
                ),
            }
            .into());
        }
        let mut ctx = self
            .model
            .model
            .new_context(backend()?, self.model.context_params(n_batch))
            .map_err(|e| llama("create a context")(&e))?;
        let start = Instant::now();
        let n_past = chunks
            .eval_chunks(&mut self.mtmd, &mut ctx, 0, 0, n_batch as i32, true)
            .map_err(|e| llama("evaluate the image prompt")(&e))?;
        let prompt_ms = start.elapsed().as_secs_f64() * 1000.0;
        let start = Instant::now();
        let (text, generated) =
            self.model
                .generate(&mut ctx, n_past, LlamaSampler::greedy(), max_tokens)?;
        let stats = GenerationStats {
            prompt_tokens: chunks.total_tokens(),
            image_tokens,
            generated_tokens: generated,
            prompt_ms,
            generate_ms: start.elapsed().as_secs_f64() * 1000.0,
        };
        Ok((text.trim().to_owned(), stats))
    }
}

impl FrameDescriber for LlamaVisionDescriber {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&mut self, input: DescribeInput<'_>) -> Result<Description, InferenceError> {
        let (text, stats) = self.describe_image(input.image)?;
        let text = if text.is_empty() {
            "(the model returned no text)".to_owned()
        } else {
            text
        };
        Ok(Description {
            text,
            // A generative model gives no calibrated confidence; 0.5 says "unknown" rather than inventing one.
            confidence: 0.5,
            tags: vec!["vision-model".to_owned()],
            details: json!({
                "model": file_name(&self.model.path),
                "prompt_tokens": stats.prompt_tokens,
                "image_tokens": stats.image_tokens,
                "generated_tokens": stats.generated_tokens,
                "prompt_ms": (stats.prompt_ms * 10.0).round() / 10.0,
                "generate_ms": (stats.generate_ms * 10.0).round() / 10.0,
            }),
        })
    }
}

/// Most tokens of one text to embed (BERT's position table); longer texts are cut.
pub const MAX_EMBED_TOKENS: usize = 512;

/// A sentence-embedding model (a BERT-architecture GGUF with mean pooling, e.g. all-MiniLM-L6-v2 as
/// `scripts/convert_minilm.py` converts it): texts in, unit-length vectors out, so that a dot product is
/// the cosine similarity. Shared by every caller; each call has its own llama.cpp context.
pub struct Embedder {
    model: LlamaModel,
    path: PathBuf,
    threads: i32,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("path", &self.path)
            .finish()
    }
}

impl Embedder {
    /// Loads an embedding model (checked first: a GGUF whose architecture is an encoder llama.cpp
    /// pools, `bert`).
    pub fn load(path: impl AsRef<Path>, threads: i32) -> Result<Arc<Embedder>, LlamaError> {
        let path = path.as_ref().to_owned();
        let header = check_gguf(&path, false)?;
        let arch = header.str("general.architecture").unwrap_or("unknown");
        if arch != "bert" {
            return Err(LlamaError::WrongKind {
                path,
                found: arch.to_owned(),
                expected: "sentence-embedding model (architecture bert)",
            });
        }
        let model = LlamaModel::load_from_file(backend()?, &path, &LlamaModelParams::default())
            .map_err(|e| llama("load the embedding model")(&e))?;
        Ok(Arc::new(Embedder {
            model,
            path,
            threads,
        }))
    }

    /// Length of every vector.
    pub fn dimensions(&self) -> usize {
        self.model.n_embd() as usize
    }

    /// Path it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tokens of a text as the model sees it ([CLS] ... [SEP]), cut to [`MAX_EMBED_TOKENS`].
    fn tokens(&self, text: &str) -> Vec<llama_cpp_2::token::LlamaToken> {
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        if tokens.len() > MAX_EMBED_TOKENS {
            // Keep the closing [SEP]: the model was trained with it.
            let last = tokens[tokens.len() - 1];
            tokens.truncate(MAX_EMBED_TOKENS - 1);
            tokens.push(last);
        }
        tokens
    }

    /// Embeds `texts`, as many per llama.cpp batch as fit; returns one unit vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LlamaError> {
        let n_batch = MAX_EMBED_TOKENS as u32 * 4;
        // Sequences per batch: a power of two (llama.cpp splits the context evenly between them),
        // no more than the call has texts.
        let max_seqs = texts.len().clamp(1, 64).next_power_of_two();
        // llama.cpp gives each sequence n_ctx / n_seq_max positions (padded to 256): room for a
        // whole text each. An encoder keeps no KV cache, so this costs no memory.
        let n_ctx = (MAX_EMBED_TOKENS * max_seqs) as u32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_seq_max(max_seqs as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads)
            .with_embeddings(true)
            .with_pooling_type(llama_cpp_2::context::params::LlamaPoolingType::Mean);
        let mut ctx = self
            .model
            .new_context(backend()?, params)
            .map_err(|e| llama("create an embedding context")(&e))?;
        let tokenized: Vec<_> = texts.iter().map(|t| self.tokens(t)).collect();
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < tokenized.len() {
            // Texts of this batch: whole texts while they fit (one text always does).
            let mut end = start;
            let mut used = 0;
            while end < tokenized.len()
                && end - start < max_seqs
                && (end == start || used + tokenized[end].len() <= n_batch as usize)
            {
                used += tokenized[end].len();
                end += 1;
            }
            let mut batch = LlamaBatch::new(used.max(1), (end - start) as i32);
            for (seq, tokens) in tokenized[start..end].iter().enumerate() {
                for (pos, token) in tokens.iter().enumerate() {
                    batch
                        .add(*token, pos as i32, &[seq as i32], true)
                        .map_err(|e| llama("batch a text")(&e))?;
                }
            }
            ctx.clear_kv_cache();
            ctx.decode(&mut batch)
                .map_err(|e| llama("encode the texts")(&e))?;
            for seq in 0..end - start {
                let v = ctx
                    .embeddings_seq_ith(seq as i32)
                    .map_err(|e| llama("read an embedding")(&e))?;
                let norm = v
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt()
                    .max(f32::EPSILON);
                out.push(v.iter().map(|x| x / norm).collect());
            }
            start = end;
        }
        Ok(out)
    }
}
