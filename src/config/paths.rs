//! Where a path of the configuration points (docs/config.md, "Relative paths").
//!
//! A relative path written in the configuration file is taken from that file's
//! directory, so the daemon, `tiercache status` and the offline commands find the same
//! files whatever directory they are run from. A path given by a `TIERCACHE__` variable
//! is not in a file: it stays relative to the working directory. A bare file name found
//! in neither place is looked up in `$CREDENTIALS_DIRECTORY` (systemd's
//! `LoadCredential=`, a container's `/run/secrets`).
//!
//! `data_dir` and `unix:PATH` listeners are not resolved here: they are where the process
//! keeps its state and its socket, relative to the working directory as docs/config.md
//! says (under systemd, `WorkingDirectory=` is the `StateDirectory=`, while the file
//! lives in `/etc`).

use std::path::{Component, Path, PathBuf};

use super::layers::override_var;
use super::Env;

/// Where a path was looked for: every error about the file can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    /// Where the file is, or would be.
    pub path: PathBuf,
    /// How `path` was found from what was written, for error lines: empty for an
    /// absolute path, else e.g. `"tokens" relative to the directory of /etc/t.toml`.
    pub how: String,
}

impl Located {
    /// `PATH` followed by how it was found, for error lines.
    pub(crate) fn describe(&self) -> String {
        let shown = std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone());
        if self.how.is_empty() {
            shown.display().to_string()
        } else {
            format!("{} ({})", shown.display(), self.how)
        }
    }
}

/// What relative paths of one configuration are taken from.
pub(super) struct PathBase<'a> {
    /// The configuration file, if one was read.
    file: Option<&'a Path>,
    env: Env<'a>,
}

impl<'a> PathBase<'a> {
    /// The base of the configuration read from `file` (none: built-in defaults and
    /// variables only).
    pub(super) fn new(file: Option<&'a Path>, env: Env<'a>) -> Self {
        Self { file, env }
    }

    /// Locates the path `written` at `key`. `overridable`: the key can be set by a
    /// `TIERCACHE__` variable (keys inside `[[caches]]` cannot).
    pub(super) fn locate(&self, key: &str, overridable: bool, written: &str) -> Located {
        let given = Path::new(written);
        if given.is_absolute() {
            return Located { path: given.to_path_buf(), how: String::new() };
        }
        let var = overridable.then(|| override_var(key)).filter(|var| (self.env)(var).is_some());
        let (path, from) = match (&var, self.file) {
            (None, Some(file)) => {
                let dir = file.parent().unwrap_or(Path::new(""));
                (dir.join(given), format!("{written:?} relative to the directory of {}", file.display()))
            }
            (Some(var), _) => {
                (given.to_path_buf(), format!("{written:?} from {var}, relative to the working directory"))
            }
            (None, None) => (given.to_path_buf(), format!("{written:?} relative to the working directory")),
        };
        if path.exists() {
            return Located { path, how: from };
        }
        let bare = matches!(given.components().collect::<Vec<_>>().as_slice(), [Component::Normal(_)]);
        match (self.env)("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty() && bare) {
            Some(dir) => {
                let credential = Path::new(&dir).join(given);
                if credential.exists() {
                    Located { path: credential, how: format!("{written:?} found in $CREDENTIALS_DIRECTORY") }
                } else {
                    let how = format!("{from}; not in $CREDENTIALS_DIRECTORY ({}) either", credential.display());
                    Located { path, how }
                }
            }
            None => Located { path, how: from },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn locate(file: Option<&Path>, vars: &[(&str, &str)], key: &str, overridable: bool, written: &str) -> Located {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let env = |k: &str| vars.get(k).cloned();
        PathBase::new(file, &env).locate(key, overridable, written)
    }

    #[test]
    fn relative_paths_follow_the_file_an_override_the_working_directory() {
        let file = Path::new("/etc/tiercache/tiercache.toml");
        let found = locate(Some(file), &[], "api.tokens_file", true, "tokens");
        assert_eq!(found.path, Path::new("/etc/tiercache/tokens"));
        assert!(found.how.contains("relative to the directory of /etc/tiercache/tiercache.toml"), "{found:?}");
        assert_eq!(
            locate(Some(file), &[], "caches[0].schema", false, "s/a.json").path,
            Path::new("/etc/tiercache/s/a.json")
        );
        assert_eq!(locate(Some(file), &[], "api.tokens_file", true, "/srv/tokens").path, Path::new("/srv/tokens"));
        let env = [("TIERCACHE__API__TOKENS_FILE", "tokens")];
        let from_env = locate(Some(file), &env, "api.tokens_file", true, "tokens");
        assert_eq!(from_env.path, Path::new("tokens"));
        assert!(from_env.how.contains("TIERCACHE__API__TOKENS_FILE"), "{from_env:?}");
        // A file in the working directory: its directory is the working directory.
        assert_eq!(
            locate(Some(Path::new("tiercache.toml")), &[], "api.tls_cert", true, "c.pem").path,
            Path::new("c.pem")
        );
    }

    #[test]
    fn a_bare_name_falls_back_to_the_credentials_directory() {
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("db-password"), "x").unwrap();
        let dir = creds.path().display().to_string();
        let env = [("CREDENTIALS_DIRECTORY", dir.as_str())];
        let file = Path::new("/nonexistent/tiercache.toml");
        let found = locate(Some(file), &env, "postgres.password_file", true, "db-password");
        assert_eq!(found.path, creds.path().join("db-password"));
        let missing = locate(Some(file), &env, "api.tokens_file", true, "tokens");
        assert_eq!(missing.path, Path::new("/nonexistent/tokens"));
        assert!(missing.describe().contains("not in $CREDENTIALS_DIRECTORY"), "{}", missing.describe());
        // Only bare names are looked up there.
        assert_eq!(
            locate(Some(file), &env, "api.tokens_file", true, "sub/db-password").path,
            Path::new("/nonexistent/sub/db-password")
        );
    }
}
