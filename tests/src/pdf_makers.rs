//! PDFs with known text, made by real producers installed on the machine:
//! fpdf2 (PyPI; a core font and an embedded TrueType font), cairo (`pango-view`)
//! and Ghostscript (`enscript | ps2pdf`: Type 1C fonts with no ToUnicode map, the
//! hard case for pure-Rust extractors). `scripts/setup.sh` installs the tools;
//! fpdf2 comes from `REGATTA_TEST_PYTHON` (scripts/test's virtual environment).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run_tool;

/// A program that writes PDFs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdfProducer {
    /// fpdf2 with the core Helvetica font (not embedded, WinAnsi encoding).
    FpdfCore,
    /// fpdf2 with DejaVu Sans embedded (a composite font with a ToUnicode map).
    FpdfTrueType,
    /// Pango on cairo (`pango-view`): embedded subsets with ToUnicode maps.
    Cairo,
    /// enscript's PostScript through Ghostscript's `ps2pdf`.
    Ghostscript,
}

impl PdfProducer {
    pub const ALL: [PdfProducer; 4] = [
        Self::FpdfCore,
        Self::FpdfTrueType,
        Self::Cairo,
        Self::Ghostscript,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::FpdfCore => "fpdf2-core",
            Self::FpdfTrueType => "fpdf2-ttf",
            Self::Cairo => "cairo",
            Self::Ghostscript => "ghostscript",
        }
    }
}

/// The Python the tests run helper scripts with: `$REGATTA_TEST_PYTHON` (scripts/test
/// points it at a venv with fpdf2, numpy and Pillow), else `python3`.
pub fn test_python() -> String {
    std::env::var("REGATTA_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

const FPDF_SCRIPT: &str = r#"
import sys
from fpdf import FPDF
text_path, out, font = sys.argv[1:4]
pdf = FPDF()
pdf.add_page()
if font == "core":
    pdf.set_font("Helvetica", size=11)
else:
    pdf.add_font("body", fname=font)
    pdf.set_font("body", size=11)
pdf.multi_cell(0, 5, open(text_path, encoding="utf-8").read())
pdf.output(out)
"#;

/// DejaVu Sans, which Debian's fonts-dejavu-core installs.
pub const DEJAVU_SANS: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Writes `text` as a PDF made by `producer` into `dir/name.pdf`.
pub fn make_pdf(
    producer: PdfProducer,
    text: &str,
    dir: &Path,
    name: &str,
) -> Result<PathBuf, String> {
    let src = dir.join(format!("{name}.txt"));
    std::fs::write(&src, text).map_err(|e| format!("{}: {e}", src.display()))?;
    let out = dir.join(format!("{name}.pdf"));
    match producer {
        PdfProducer::FpdfCore | PdfProducer::FpdfTrueType => {
            let font = if producer == PdfProducer::FpdfCore {
                "core"
            } else {
                DEJAVU_SANS
            };
            run_tool(
                Command::new(test_python())
                    .args(["-c", FPDF_SCRIPT])
                    .arg(&src)
                    .arg(&out)
                    .arg(font),
                "fpdf2 (pip install fpdf2; set REGATTA_TEST_PYTHON)",
            )?;
        }
        PdfProducer::Cairo => run_tool(
            Command::new("pango-view")
                .args(["--no-display", "--font=DejaVu Serif 11", "--output"])
                .arg(&out)
                .arg(&src),
            "pango-view (Debian pango1.0-tools)",
        )?,
        PdfProducer::Ghostscript => {
            let ps = dir.join(format!("{name}.ps"));
            run_tool(
                Command::new("enscript")
                    .args(["-q", "-B", "-p"])
                    .arg(&ps)
                    .arg(&src),
                "enscript (Debian enscript)",
            )?;
            run_tool(
                Command::new("ps2pdf").arg(&ps).arg(&out),
                "ps2pdf (Debian ghostscript)",
            )?;
        }
    }
    Ok(out)
}

/// Whitespace-separated words of `text`.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}
