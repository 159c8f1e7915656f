//! Secret files: `*_file` keys, read once at load time, with systemd credentials.
//!
//! Reading at load time means `check-config` catches a missing or unreadable file
//! before `run` binds anything. systemd's `LoadCredential=` puts files in
//! `$CREDENTIALS_DIRECTORY`, so a bare file name that is not in the working
//! directory is looked up there.

use std::path::{Component, Path, PathBuf};

use secrecy::SecretString;

use super::{ConfigError, Env};

/// Where a configured path really is: as written if it exists, else
/// `$CREDENTIALS_DIRECTORY/NAME` for a bare file name when that variable is set.
pub fn resolve(path: &str, env: Env<'_>) -> PathBuf {
    let given = PathBuf::from(path);
    if given.exists() {
        return given;
    }
    let bare = matches!(given.components().collect::<Vec<_>>().as_slice(), [Component::Normal(_)]);
    match env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        Some(dir) if bare => Path::new(&dir).join(given),
        _ => given,
    }
}

/// Reads the secret file configured at `key`, without its trailing newline.
///
/// # Errors
/// A [`ConfigError`] naming `key` when the file cannot be read or is empty; the
/// problem never quotes the contents.
pub fn read(key: &str, path: &str, env: Env<'_>) -> Result<(PathBuf, SecretString), ConfigError> {
    let resolved = resolve(path, env);
    let text = std::fs::read_to_string(&resolved)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", resolved.display())))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(ConfigError::new(key, format!("secret file {} is empty", resolved.display())));
    }
    Ok((resolved, SecretString::from(secret)))
}
