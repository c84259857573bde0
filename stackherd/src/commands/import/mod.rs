//! `import FILE [-o OUT]`: a services.toml from a Procfile, a Docker Compose file or a
//! process-compose file, with what did not map listed by the source's line (on the
//! terminal and as comments at the end of the file). It never overwrites a file.

mod compose;
mod model;
mod process_compose;
mod procfile;
mod yaml;

use std::path::{Path, PathBuf};

pub use crate::cli::ImportFormat as Format;
use crate::error::{Error, Result, exit};
use crate::state::repo_files;
use crate::ui::{self, Ui, text};

/// The files `init` imports when a repository has no services.toml, in this order:
/// processes before containers.
pub const KNOWN: [&str; 7] = [
    "process-compose.yaml",
    "process-compose.yml",
    "Procfile",
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The format a file's name says, if it says one.
pub fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.starts_with("procfile") {
        Some(Format::Procfile)
    } else if name.contains("process-compose") {
        Some(Format::ProcessCompose)
    } else if name.contains("compose") && (name.ends_with(".yml") || name.ends_with(".yaml")) {
        Some(Format::Compose)
    } else {
        None
    }
}

/// The services.toml text for `file`, and how many settings did not map.
pub fn convert(file: &Path, format: Format) -> Result<(String, Vec<String>)> {
    let failed = |why: String| Error::ImportFailed {
        file: file.to_path_buf(),
        why,
    };
    // Never opened unless it is a file: a FIFO would block the read for ever.
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(failed("it is not a regular file".to_string())),
        Err(err) => return Err(Error::io(format!("cannot read {}", file.display()), err)),
    }
    let source =
        std::fs::read_to_string(file).map_err(|err| Error::io(format!("cannot read {}", file.display()), err))?;
    let mut imported = match format {
        Format::Procfile => procfile::import(&source),
        Format::ProcessCompose => process_compose::import(&yaml::parse(&source).map_err(failed)?),
        Format::Compose => {
            // Compose names a project after its directory; the images it builds after both.
            let dir = file
                .canonicalize()
                .ok()
                .and_then(|p| {
                    p.parent()
                        .and_then(|d| d.file_name())
                        .map(|n| n.to_string_lossy().to_lowercase())
                })
                .unwrap_or_else(|| "project".to_string());
            let project: String = dir
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            compose::import(&yaml::parse(&source).map_err(failed)?, &project)
        }
    };
    // foreman, honcho and Compose read `.env` beside the file by themselves.
    if file.with_file_name(".env").is_file() {
        imported.project_env_file = Some(".env".to_string());
    }
    if imported.services.is_empty() {
        return Err(Error::ImportFailed {
            file: file.to_path_buf(),
            why: "it names no service".to_string(),
        });
    }
    let shown = file
        .file_name()
        .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let unmapped = imported
        .unmapped
        .iter()
        .map(|u| format!("{shown}:{}: {}", u.line, u.what))
        .collect();
    Ok((imported.render(&shown), unmapped))
}

pub fn run(ui: &Ui, file: &Path, format: Option<Format>, output: Option<&Path>) -> Result<u8> {
    let format = format.or_else(|| format_of(file)).ok_or_else(|| Error::ImportFailed {
        file: file.to_path_buf(),
        why: "its name says no format: give --format procfile, compose or process-compose".to_string(),
    })?;
    let (text, unmapped) = convert(file, format)?;
    let target: PathBuf = match output {
        Some(path) if path == Path::new("-") => {
            ui::raw_line(text.trim_end());
            report(ui, &unmapped);
            return Ok(exit::OK);
        }
        Some(path) => path.to_path_buf(),
        None => file.parent().unwrap_or(Path::new(".")).join("services.toml"),
    };
    // A link counts as a file, even one that leads nowhere.
    if target.symlink_metadata().is_ok() {
        return Err(Error::WouldOverwrite { path: target });
    }
    repo_files::write(&target, &text).map_err(|err| Error::io(format!("cannot write {}", target.display()), err))?;
    ui.done(text::plain(&format!(
        "wrote {} from {}",
        target.display(),
        file.display()
    )));
    report(ui, &unmapped);
    let dir = |p: &Path| p.parent().and_then(|d| d.canonicalize().ok());
    if dir(&target) != dir(file) {
        ui.warn(text::plain(&format!(
            "{} is not beside {}: the relative paths in it (cwd, env_file, volumes) are still relative to {}'s directory",
            target.display(),
            file.display(),
            file.display()
        )));
    }
    Ok(exit::OK)
}

fn report(ui: &Ui, unmapped: &[String]) {
    if unmapped.is_empty() {
        return;
    }
    ui.warn(format!(
        "{} setting(s) did not map (also listed at the end of the file):",
        unmapped.len()
    ));
    for line in unmapped {
        ui.info(text::plain(line));
    }
}
