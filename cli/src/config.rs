//! Where the collector is and the token to show it: a TOML file, then the environment, then
//! the command line.

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Raw {
    url: String,
    /// The token itself; prefer `token_file` (a file only you can read).
    token: Option<String>,
    token_file: Option<PathBuf>,
    /// A PEM CA to trust besides the public roots, for a collector behind a private CA.
    ca_file: Option<PathBuf>,
    timeout_secs: u64,
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            url: "http://127.0.0.1:8080".into(),
            token: None,
            token_file: None,
            ca_file: None,
            timeout_secs: 30,
        }
    }
}

/// The checked settings.
pub struct Settings {
    pub url: reqwest::Url,
    pub token: Option<String>,
    pub ca_pem: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    // The token stays out of any debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads `file` (or the first default file that exists), the environment and `url`.
    pub fn load(file: Option<&Path>, url: Option<String>) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Raw::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => {
                if let Some(path) = default_files().into_iter().find(|p| p.exists()) {
                    figment = figment.merge(Toml::file(path));
                }
            }
        }
        figment = figment.merge(Env::prefixed("NETWARDEN_").only(&[
            "url",
            "token",
            "token_file",
            "ca_file",
            "timeout_secs",
        ]));
        if let Some(url) = url {
            figment = figment.merge(Serialized::default("url", url));
        }
        let raw: Raw = figment.extract().map_err(|e| anyhow::anyhow!("{e}"))?;
        Settings::check(raw)
    }

    fn check(raw: Raw) -> anyhow::Result<Settings> {
        let mut url =
            reqwest::Url::parse(&raw.url).with_context(|| format!("url: {:?}", raw.url))?;
        if !["http", "https"].contains(&url.scheme()) {
            bail!("url: {:?} is not http:// or https://", raw.url);
        }
        // A collector behind a path prefix: API paths join under it, not beside it.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let token = match (raw.token, raw.token_file) {
            (Some(_), Some(_)) => bail!("token and token_file: give one, not both"),
            (Some(token), None) => Some(token.trim().to_string()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("token_file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if token.as_deref() == Some("") {
            bail!("token: empty");
        }
        let ca_pem = match raw.ca_file {
            Some(path) => {
                Some(std::fs::read(&path).with_context(|| format!("ca_file {}", path.display()))?)
            }
            None => None,
        };
        if raw.timeout_secs == 0 {
            bail!("timeout_secs: must be at least 1");
        }
        Ok(Settings {
            url,
            token,
            ca_pem,
            timeout: Duration::from_secs(raw.timeout_secs),
        })
    }
}

fn default_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        files.push(PathBuf::from(dir).join("netwarden/cli.toml"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        files.push(PathBuf::from(home).join(".config/netwarden/cli.toml"));
    }
    files.push(PathBuf::from("/etc/netwarden/cli.toml"));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Raw {
        Raw::default()
    }

    #[test]
    fn a_token_comes_from_one_place_and_is_trimmed() {
        let dir = tempfile_dir();
        let file = dir.join("token");
        std::fs::write(&file, "nw_secret\n").unwrap();
        let settings = Settings::check(Raw {
            token_file: Some(file.clone()),
            ..raw()
        })
        .unwrap();
        assert_eq!(settings.token.as_deref(), Some("nw_secret"));
        assert!(!format!("{settings:?}").contains("nw_secret"));
        let both = Settings::check(Raw {
            token: Some("x".into()),
            token_file: Some(file),
            ..raw()
        });
        assert!(both.unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn api_paths_join_under_a_path_prefix() {
        let settings = Settings::check(Raw {
            url: "https://noc.example.net/netwarden".into(),
            ..raw()
        })
        .unwrap();
        assert_eq!(
            settings.url.join("api/devices").unwrap().as_str(),
            "https://noc.example.net/netwarden/api/devices"
        );
    }

    #[test]
    fn a_url_must_be_http() {
        let err = Settings::check(Raw {
            url: "ftp://collector".into(),
            ..raw()
        })
        .unwrap_err();
        assert!(err.to_string().contains("not http"), "{err}");
        assert!(Settings::check(Raw {
            url: "not a url".into(),
            ..raw()
        })
        .is_err());
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netwarden-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
