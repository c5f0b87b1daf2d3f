//! Types every regatta layer shares: newtype identifiers, byte sizes and resource
//! requests.

mod error;
mod ids;
mod resources;
mod size;

pub use error::{CommonError, Result};
pub use ids::{JobId, StageId, TaskId, WorkerId};
pub use resources::Resources;
pub use size::ByteSize;
