//! Classifying a task's error: what the driver may retry and what it may not.

use regatta_engine::datafusion::arrow::error::ArrowError;
use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::EngineError;
use regatta_proto::FailureClass;
use regatta_shuffle::ShuffleError;

fn io_class(e: &std::io::Error) -> FailureClass {
    use std::io::ErrorKind as K;
    match e.kind() {
        // The input is missing or wrong: another worker would find the same.
        K::NotFound | K::PermissionDenied | K::InvalidData | K::UnexpectedEof => FailureClass::Data,
        K::OutOfMemory | K::StorageFull | K::QuotaExceeded => FailureClass::Resource,
        _ => FailureClass::Io,
    }
}

fn arrow_class(e: &ArrowError) -> FailureClass {
    match e {
        ArrowError::IoError(_, io) => io_class(io),
        ArrowError::ExternalError(inner) => external_class(inner.as_ref()),
        ArrowError::MemoryError(_) => FailureClass::Resource,
        ArrowError::NotYetImplemented(_) | ArrowError::SchemaError(_) => FailureClass::Plan,
        // Casts, parses, division by zero, bad values: the data.
        _ => FailureClass::Data,
    }
}

fn external_class(e: &(dyn std::error::Error + Send + Sync + 'static)) -> FailureClass {
    if let Some(e) = e.downcast_ref::<DataFusionError>() {
        return classify(e);
    }
    if let Some(e) = e.downcast_ref::<EngineError>() {
        return match e {
            // Too many rows failed: the same rows would fail again.
            EngineError::InputNotFound { .. }
            | EngineError::Row { .. }
            | EngineError::FailureBudget(_) => FailureClass::Data,
            // The policy refuses the same input every time.
            EngineError::InvalidArgument(_) | EngineError::AccessRefused(_) => FailureClass::Plan,
            EngineError::DataFusion(d) => classify(d),
            EngineError::Arrow(a) => arrow_class(a),
            EngineError::Io { source, .. } => io_class(source),
            EngineError::Lance { .. } | EngineError::Storage { .. } => FailureClass::Io,
        };
    }
    if let Some(e) = e.downcast_ref::<regatta_actors::ActorError>() {
        return match e {
            regatta_actors::ActorError::NeverFits { .. } => FailureClass::Resource,
            regatta_actors::ActorError::ModelNotFound { .. }
            | regatta_actors::ActorError::ModelFiles { .. }
            | regatta_actors::ActorError::PoolConfig { .. } => FailureClass::Plan,
            _ => FailureClass::UserFunction,
        };
    }
    if e.downcast_ref::<ShuffleError>().is_some() {
        return FailureClass::LostPeer;
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io_class(io);
    }
    FailureClass::Io
}

/// The class of a task's error. Unknown causes are retried, as I/O.
pub fn classify(e: &DataFusionError) -> FailureClass {
    if ShuffleError::lost_worker(e).is_some() {
        return FailureClass::LostPeer;
    }
    match e {
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::SQL(..)
        | DataFusionError::Configuration(_) => FailureClass::Plan,
        DataFusionError::ResourcesExhausted(_) => FailureClass::Resource,
        DataFusionError::IoError(io) => io_class(io),
        DataFusionError::ArrowError(a, _) => arrow_class(a),
        DataFusionError::ParquetError(_) => FailureClass::Data,
        DataFusionError::External(inner) => external_class(inner.as_ref()),
        DataFusionError::Context(_, inner) => classify(inner),
        DataFusionError::Shared(inner) => classify(inner),
        _ => FailureClass::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_errors_are_not_retried_and_transient_ones_are() {
        let cases = [
            (
                DataFusionError::Plan("no column x".into()),
                FailureClass::Plan,
            ),
            (
                DataFusionError::ArrowError(
                    Box::new(ArrowError::CastError("'abc' is not an integer".into())),
                    None,
                ),
                FailureClass::Data,
            ),
            (
                DataFusionError::External(Box::new(EngineError::InputNotFound {
                    path: "/x.pdf".into(),
                    reason: "no such file".into(),
                })),
                FailureClass::Data,
            ),
            (
                DataFusionError::IoError(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                FailureClass::Io,
            ),
            (
                DataFusionError::Context(
                    "reading".into(),
                    Box::new(DataFusionError::ResourcesExhausted("memory".into())),
                ),
                FailureClass::Resource,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(classify(&e), want, "{e}");
        }
    }
}
