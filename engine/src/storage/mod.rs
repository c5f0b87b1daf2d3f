//! Object storage: `s3://` (Amazon S3 and S3-compatible servers), `gs://` and
//! `az://` URLs wherever the engine reads or writes, through the process's
//! [`Stores`] (configured once, from `[storage]` and the standard chain).

pub mod aws_profile;
pub mod lance_provider;
pub mod object_url;
pub mod options;
pub mod remote;
pub mod resolved;
pub mod stores;

pub use object_url::{is_object_url, ObjectUrl, StoreKind};
pub use options::{BucketOptions, S3Credentials, StorageOptions};
pub use stores::{install, stores, StoreFailure, StoreRegistry, Stores};
