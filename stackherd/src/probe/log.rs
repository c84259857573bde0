//! The `log` probe: a line of the service's log, written since it started, matches.

use super::{ProbeError, ProbeSite};
use crate::state::logs::{self, LogReader};

/// How much of a log a log probe reads at first, from the end.
const LOG_WINDOW: u64 = 1024 * 1024;

/// A reader of what the service has written since it started (at most the last MiB),
/// whole lines only: a line written in pieces is matched whole, as it always was.
pub(super) fn reader(site: &ProbeSite) -> LogReader {
    let len = logs::len(&site.log);
    LogReader::from(&site.log, site.log_offset.max(len.saturating_sub(LOG_WINDOW)).min(len)).whole_lines_only()
}

pub(super) fn probe_log(re: &regex::Regex, reader: &mut LogReader) -> Result<(), ProbeError> {
    let lines = reader.new_lines().map_err(|io| ProbeError::LogUnreadable {
        path: reader.path().to_path_buf(),
        io,
    })?;
    if lines.iter().any(|line| re.is_match(line)) {
        Ok(())
    } else {
        Err(ProbeError::NoLogLine {
            pattern: re.to_string(),
        })
    }
}
