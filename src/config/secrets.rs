//! Secret files: `*_file` keys, read once at load time.
//!
//! Reading at load time means `check-config` catches a missing or unreadable file
//! before `run` binds anything. Where the file is looked for is [`super::paths`]'s
//! decision (the configuration file's directory, systemd's `$CREDENTIALS_DIRECTORY`).

use secrecy::SecretString;

use super::paths::Located;
use super::ConfigError;

/// Reads the secret file configured at `key`, without its trailing newline.
///
/// # Errors
/// A [`ConfigError`] naming `key`, the file and where it was looked for when it cannot
/// be read or is empty; the problem never quotes the contents.
pub(super) fn read(key: &str, located: &Located) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(&located.path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", located.describe())))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(ConfigError::new(key, format!("secret file {} is empty", located.describe())));
    }
    Ok(SecretString::from(secret))
}
