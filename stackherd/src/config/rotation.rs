//! `log_max_size` and `log_keep`, in `[project]` and per service: when a service's log
//! rotates, and how many rotated files are kept.

use toml::de::DeValue;

use super::read::{self, Diagnostics, TableReader, Value};

/// How many rotated files a log keeps when `log_keep` is not set.
const DEFAULT_LOG_KEEP: u32 = 3;

/// `log_max_size` and `log_keep`: a log that reaches the size is renamed `NAME.log.1`
/// (older ones move up), keeping `keep` rotated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogRotation {
    pub max_size: Option<u64>,
    pub keep: Option<u32>,
}

impl LogRotation {
    /// This one where it says, `fallback` elsewhere.
    pub fn over(self, fallback: LogRotation) -> LogRotation {
        LogRotation {
            max_size: self.max_size.or(fallback.max_size),
            keep: self.keep.or(fallback.keep),
        }
    }

    /// The size and count, when the log rotates at all.
    pub fn limits(self) -> Option<(u64, u32)> {
        Some((self.max_size?, self.keep.unwrap_or(DEFAULT_LOG_KEEP)))
    }
}

/// `log_max_size` and `log_keep` of a table.
pub fn parse_log_rotation(reader: &TableReader<'_, '_>, diags: &mut Diagnostics) -> LogRotation {
    let max_size = reader
        .get("log_max_size")
        .and_then(|v| as_size(v, &reader.what("log_max_size"), diags));
    let keep = reader.get("log_keep").and_then(|v| {
        let what = reader.what("log_keep");
        match read::as_integer(v, &what, diags).map(u32::try_from) {
            Some(Ok(n)) if n <= 1000 => Some(n),
            Some(_) => {
                diags.error_with_help(
                    v.span(),
                    format!("{what} must be from 0 to 1000"),
                    "write, for example, log_keep = 3",
                );
                None
            }
            None => None,
        }
    });
    LogRotation { max_size, keep }
}

/// A size: a whole number of bytes, or a string with a binary unit ("512KB", "20MB",
/// "1GB"; `K`, `KiB` and `KB` all mean 1024), at least 1 KiB.
fn as_size(value: &Value<'_>, what: &str, diags: &mut Diagnostics) -> Option<u64> {
    let help = "write a size such as \"20MB\" or \"512KB\" (at least 1KB)";
    let bytes = match value.get_ref() {
        DeValue::Integer(_) => read::as_integer(value, what, diags).and_then(|n| u64::try_from(n).ok()),
        DeValue::String(s) => {
            let text = diags.expand(s, value.span(), what)?;
            parse_size(&text)
        }
        _ => {
            read::wrong_type(value, what, "a size such as \"20MB\"", diags);
            return None;
        }
    };
    match bytes {
        Some(n) if n >= 1024 => Some(n),
        _ => {
            diags.error_with_help(value.span(), format!("{what} is not a size of at least 1KB"), help);
            None
        }
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}
