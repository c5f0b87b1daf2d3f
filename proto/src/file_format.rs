//! [`regatta_common::FileFormat`] and [`regatta_common::WriteMode`] on the wire,
//! both ways: the one place the protocol's enums and the system's types meet.

use regatta_common::{FileFormat, WriteMode};

impl From<FileFormat> for crate::FileFormat {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Parquet => Self::Parquet,
            FileFormat::Csv => Self::Csv,
            FileFormat::Json => Self::Json,
            FileFormat::Lance => Self::Lance,
        }
    }
}

impl crate::FileFormat {
    /// The format this names; None when unspecified (the reader guesses from
    /// the path).
    pub fn known(self) -> Option<FileFormat> {
        match self {
            Self::Unspecified => None,
            Self::Parquet => Some(FileFormat::Parquet),
            Self::Csv => Some(FileFormat::Csv),
            Self::Json => Some(FileFormat::Json),
            Self::Lance => Some(FileFormat::Lance),
        }
    }
}

impl From<WriteMode> for crate::WriteMode {
    fn from(m: WriteMode) -> Self {
        match m {
            WriteMode::Create => Self::Create,
            WriteMode::Append => Self::Append,
            WriteMode::Overwrite => Self::Overwrite,
        }
    }
}

impl crate::WriteMode {
    /// The write mode this names; None when unspecified or for a job that adds
    /// columns (which writes no rows of its own).
    pub fn write_mode(self) -> Option<WriteMode> {
        match self {
            Self::Create => Some(WriteMode::Create),
            Self::Append => Some(WriteMode::Append),
            Self::Overwrite => Some(WriteMode::Overwrite),
            Self::Unspecified | Self::AddColumns => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_format_and_mode_round_trips() {
        for f in regatta_common::FileFormat::ALL {
            assert_eq!(crate::FileFormat::from(f).known(), Some(f));
        }
        for m in regatta_common::WriteMode::ALL {
            assert_eq!(crate::WriteMode::from(m).write_mode(), Some(m));
        }
        assert_eq!(crate::FileFormat::Unspecified.known(), None);
    }
}
