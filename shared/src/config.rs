//! Layered configuration: defaults < TOML file < environment (`PREFIX` + `SECTION__KEY`).
//! Unknown keys are refused (the structs use `deny_unknown_fields`); errors name the file and
//! the field.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ConfigError {
    pub fn invalid(path: &Path, field: &str, message: impl std::fmt::Display) -> Self {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("{field}: {message}"),
        }
    }
}

/// Loads `T` from `path` with environment overrides. `env_prefix` such as `NETWARDEN_AGENT_`
/// maps `NETWARDEN_AGENT_BUFFER__MAX_RECORDS=10` to `buffer.max_records = 10`.
pub fn load<T>(path: &Path, env_prefix: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Figment::from(Serialized::defaults(T::default()))
        .merge(Toml::string(&text))
        .merge(Env::prefixed(env_prefix).split("__"))
        .extract()
        .map_err(|err| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: describe(err),
        })
}

/// One line per problem, each naming the field (`tls.cert: ...`).
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let field = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            let from = match &e.metadata {
                Some(meta) if meta.name.contains("environment") => {
                    " (from an environment variable)".to_string()
                }
                _ => String::new(),
            };
            format!("{field}{}{from}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Relative paths in a config file are relative to the file's own directory, so a config
/// and its certificates can move together.
pub fn resolve(config_path: &Path, value: &Path) -> PathBuf {
    if value.is_absolute() {
        value.to_path_buf()
    } else {
        config_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        section: Section,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Section {
        max_records: u64,
        name: String,
    }

    impl Default for Section {
        fn default() -> Self {
            Section {
                max_records: 5,
                name: "x".into(),
            }
        }
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn file_overrides_defaults() {
        let (_dir, path) = write("[section]\nname = \"y\"\n");
        let cfg: Sample = load(&path, "NW_TEST_A_").unwrap();
        assert_eq!(cfg.section.name, "y");
        assert_eq!(cfg.section.max_records, 5);
    }

    #[test]
    fn unknown_key_is_refused_with_its_path_and_the_file() {
        let (_dir, path) = write("[section]\nmax_recods = 3\n");
        let err = load::<Sample>(&path, "NW_TEST_B_").unwrap_err().to_string();
        assert!(err.contains("sample.toml"), "{err}");
        assert!(err.contains("max_recods"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let (_dir, path) = write("[section]\nmax_records = \"many\"\n");
        let err = load::<Sample>(&path, "NW_TEST_C_").unwrap_err().to_string();
        assert!(err.contains("section.max_records"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let (_dir, path) = write("[section]\nmax_records = 3\n");
        std::env::set_var("NW_TEST_D_SECTION__MAX_RECORDS", "11");
        let cfg: Sample = load(&path, "NW_TEST_D_").unwrap();
        assert_eq!(cfg.section.max_records, 11);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let cfg = Path::new("/etc/netwarden/agent.toml");
        assert_eq!(
            resolve(cfg, Path::new("pki/ca.pem")),
            Path::new("/etc/netwarden/pki/ca.pem")
        );
        assert_eq!(resolve(cfg, Path::new("/x/y")), Path::new("/x/y"));
    }
}
