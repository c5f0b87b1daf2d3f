//! The functions that call a model by name: `embed_text(text, model)` (sentence
//! embeddings), `transcribe(audio, model)` (speech to text), `classify_image(image,
//! model)` (top-1 class) and `image_logits(image, model)` (the classifier's logits).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use super::model_catalog::ModelCatalog;

/// The name `embed_text` is called by.
pub const EMBED_TEXT: &str = "embed_text";
/// The name `transcribe` is called by.
pub const TRANSCRIBE: &str = "transcribe";
/// The name `classify_image` is called by.
pub const CLASSIFY_IMAGE: &str = "classify_image";
/// The name `image_logits` is called by.
pub const IMAGE_LOGITS: &str = "image_logits";
/// The name `detect_faces` is called by.
pub const DETECT_FACES: &str = "detect_faces";
/// Appended to a classifier's name for the pool that answers `image_logits`
/// (`classify_image` gets the model's own name).
pub const LOGITS_POOL_SUFFIX: &str = ":logits";

/// Which model-calling function this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelCallKind {
    /// `embed_text(text, model)`.
    EmbedText,
    /// `transcribe(audio, model)`, audio as `audio_decode` gives it.
    Transcribe,
    /// `classify_image(image, model)`: `{label, score}` per image.
    ClassifyImage,
    /// `image_logits(image, model)`: the classifier's raw logits per image.
    ImageLogits,
    /// `detect_faces(image [, model])`: face boxes per image (MTCNN by default).
    DetectFaces,
}

impl ModelCallKind {
    pub const ALL: [ModelCallKind; 5] = [
        Self::EmbedText,
        Self::Transcribe,
        Self::ClassifyImage,
        Self::ImageLogits,
        Self::DetectFaces,
    ];

    /// The model used when the call names none.
    pub fn default_model(self) -> Option<&'static str> {
        match self {
            Self::DetectFaces => Some("mtcnn"),
            _ => None,
        }
    }

    /// The name of the pool this function calls for `model`.
    pub fn pool_name(self, model: &str) -> String {
        match self {
            Self::ImageLogits => format!("{model}{LOGITS_POOL_SUFFIX}"),
            _ => model.to_string(),
        }
    }

    /// The function's name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Self::EmbedText => EMBED_TEXT,
            Self::Transcribe => TRANSCRIBE,
            Self::ClassifyImage => CLASSIFY_IMAGE,
            Self::ImageLogits => IMAGE_LOGITS,
            Self::DetectFaces => DETECT_FACES,
        }
    }

    fn example(self) -> &'static str {
        match self {
            Self::EmbedText => "embed_text(caption, 'all-MiniLM-L6-v2')",
            Self::Transcribe => "transcribe(audio_decode(bytes, 16000, true), 'whisper-tiny.en')",
            Self::ClassifyImage => "classify_image(image_decode(bytes), 'efficientnet-lite0')",
            Self::ImageLogits => "image_logits(image_decode(bytes), 'efficientnet-lite0')",
            Self::DetectFaces => "detect_faces(image_decode(bytes))",
        }
    }

    fn check_input(self, t: &DataType) -> Result<()> {
        let ok = match self {
            Self::EmbedText => matches!(
                t,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            ),
            Self::Transcribe => match t {
                DataType::Struct(fields) => ["samples", "sample_rate", "channels"]
                    .iter()
                    .all(|n| fields.iter().any(|f| f.name() == n)),
                DataType::Null => true,
                _ => false,
            },
            Self::ClassifyImage | Self::ImageLogits | Self::DetectFaces => {
                crate::types::is_image_type(t) || matches!(t, DataType::Null)
            }
        };
        if ok {
            return Ok(());
        }
        let want = match self {
            Self::EmbedText => "the text must be a string column",
            Self::Transcribe => "the audio must be decoded audio (audio_decode's result)",
            Self::ClassifyImage | Self::ImageLogits | Self::DetectFaces => {
                "the image must be a decoded image (image_decode's result)"
            }
        };
        Err(DataFusionError::Plan(format!(
            "{}: {want}, got {t}; as in {}",
            self.name(),
            self.example()
        )))
    }
}

/// Resolves `model` in the engine's [`ModelCatalog`] and calls that model's pool.
/// Planning rewrites the call into the model's own function, so the morsel operator
/// sees the pool (its batch size, its numbers).
#[derive(Debug, Clone)]
pub struct ModelCall {
    kind: ModelCallKind,
    catalog: ModelCatalog,
    signature: Signature,
}

impl ModelCall {
    /// `kind` over the models of `catalog`.
    pub fn new(kind: ModelCallKind, catalog: ModelCatalog) -> Self {
        Self {
            kind,
            catalog,
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Immutable,
            ),
        }
    }

    /// The pool named by the model argument `v`.
    fn model_name(&self, v: Option<&ScalarValue>) -> Result<String> {
        match v {
            Some(ScalarValue::Utf8(Some(s)))
            | Some(ScalarValue::LargeUtf8(Some(s)))
            | Some(ScalarValue::Utf8View(Some(s))) => Ok(self.kind.pool_name(s)),
            None => match self.kind.default_model() {
                Some(m) => Ok(self.kind.pool_name(m)),
                None => Err(DataFusionError::Plan(format!(
                    "{}: name the model, as in {}",
                    self.kind.name(),
                    self.kind.example()
                ))),
            },
            _ => Err(DataFusionError::Plan(format!(
                "{}: the model must be a string constant, as in {}",
                self.kind.name(),
                self.kind.example()
            ))),
        }
    }
}

impl PartialEq for ModelCall {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}
impl Eq for ModelCall {}
impl std::hash::Hash for ModelCall {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state)
    }
}

impl ScalarUDFImpl for ModelCall {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::Internal(format!(
            "{}: return_field_from_args is used instead",
            self.kind.name()
        )))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(f) = args.arg_fields.first() {
            self.kind.check_input(f.data_type())?;
        }
        let name = self.model_name(args.scalar_arguments.get(1).copied().flatten())?;
        let udf = self.catalog.udf(&name)?;
        let t = udf.return_type(&[])?;
        Ok(Arc::new(Field::new(self.kind.name(), t, true)))
    }
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let name = match args.get(1) {
            Some(Expr::Literal(v, _)) => self.model_name(Some(v))?,
            None => self.model_name(None)?,
            _ => return Ok(ExprSimplifyResult::Original(args)),
        };
        let udf = self.catalog.udf(&name)?;
        let input = args.into_iter().next().ok_or_else(|| {
            DataFusionError::Plan(format!("{}: missing the input argument", self.kind.name()))
        })?;
        Ok(ExprSimplifyResult::Simplified(udf.call(vec![input])))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Only reached when planning did not rewrite the call.
        let name = match args.args.get(1) {
            Some(ColumnarValue::Scalar(v)) => self.model_name(Some(v))?,
            None => self.model_name(None)?,
            Some(_) => {
                return Err(DataFusionError::Plan(format!(
                    "{}: the model must be a string constant, as in {}",
                    self.kind.name(),
                    self.kind.example()
                )))
            }
        };
        let udf = self.catalog.udf(&name)?;
        let rows = args.number_rows;
        let text = args.args.into_iter().next().ok_or_else(|| {
            DataFusionError::Plan(format!("{}: missing the input", self.kind.name()))
        })?;
        let inner = ScalarFunctionArgs {
            args: vec![text],
            arg_fields: args.arg_fields.into_iter().take(1).collect(),
            number_rows: rows,
            return_field: args.return_field,
            config_options: args.config_options,
        };
        udf.invoke_with_args(inner)
    }
}
