//! Sentence embeddings with all-MiniLM-L6-v2 on llama.cpp: the GGUF that `scripts/convert_minilm.py`
//! makes from the PyPI package's safetensors gives the vectors an independent numpy implementation of
//! the same model computes from the same file, and they carry meaning.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crow::inference::llama::{Embedder, LlamaError};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn embedder() -> std::sync::Arc<Embedder> {
    let path = models().join("all-minilm-l6-v2.gguf");
    assert!(path.exists(), "run scripts/setup-models.sh first");
    Embedder::load(path, 2).unwrap()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The numpy reference (`scripts/minilm_reference.py`) on the model's own safetensors.
fn reference(texts: &[&str]) -> Vec<Vec<f32>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(models().join(".venv/bin/python"))
        .arg(root.join("scripts/minilm_reference.py"))
        .arg(models().join("all-minilm-l6-v2"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the models' Python (scripts/setup-models.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(texts.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn llama_cpp_embeddings_match_an_independent_numpy_implementation() {
    let texts = [
        "A customer picks up running shoes.",
        "Two people wait at the checkout; one holds a red umbrella!",
        "Café staff restock the crème brûlée shelf",
        "nothing happens",
        &"a shopper walks along the aisle and looks at every product on the shelves ".repeat(60),
    ];
    let e = embedder();
    assert_eq!(e.dimensions(), 384);
    let ours = e.embed(&texts).unwrap();
    let theirs = reference(&texts);
    assert_eq!(ours.len(), texts.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a.len(), 384);
        assert!((dot(a, a) - 1.0).abs() < 1e-4, "unit length");
        let cos = dot(a, b);
        assert!(cos > 0.999, "text {i}: cosine {cos} to the reference");
    }
    // One text at a time gives the same vectors as a batch.
    let single = e.embed(&texts[1..2]).unwrap();
    assert!(dot(&single[0], &ours[1]) > 0.9999);
}

#[test]
fn paraphrases_are_closer_than_unrelated_sentences() {
    let e = embedder();
    let v = e
        .embed(&[
            "a customer hesitates in front of the shoe shelf",
            "someone stops and looks at the sneakers for a while",
            "the delivery truck is parked outside the loading dock",
            "a woman pays for her groceries at the till",
            "a shopper buys food at the checkout",
        ])
        .unwrap();
    assert!(dot(&v[0], &v[1]) > dot(&v[0], &v[2]) + 0.2, "shoes");
    assert!(dot(&v[3], &v[4]) > dot(&v[3], &v[2]) + 0.2, "checkout");
    assert!(dot(&v[3], &v[4]) > dot(&v[3], &v[0]), "checkout vs shoes");
}

#[test]
fn a_model_that_is_not_an_embedding_model_is_a_typed_error() {
    let err = Embedder::load(models().join("gemma-3-270m-q4_k_m.gguf"), 2).unwrap_err();
    assert!(matches!(err, LlamaError::WrongKind { .. }), "{err}");
    let err = Embedder::load(models().join("nope.gguf"), 2).unwrap_err();
    assert!(matches!(err, LlamaError::Missing { .. }), "{err}");
}
