//! `kpin promote`: which version an environment receives from the environment before it in
//! `promotion:` (e.g. `[dev, qa, prod]`), and when kpin refuses. The change itself is an
//! upgrade of that environment's version ([`crate::upgrading::upgrade`]): the same report, overlay check
//! and transaction.
//!
//! The rule: `--to E` gives E the version of the environment right before E. When that one
//! runs E's version already but an earlier environment runs another, moving anything would
//! skip the environments in between: refused unless asked (`allow_skip`), and then E gets the
//! version of the nearest earlier environment that runs another one. A promotion to an older
//! version is refused: rolling back is an explicit `kpin upgrade PKG --env E --to V`.

use anyhow::Result;

use crate::error::HintExt as _;
use crate::manifest::{Manifest, Package};
use crate::upgrading::upgrade::VersionMove;

/// What a promotion of one package to one environment does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Move the target's environment to the version `from` runs.
    Promote { target: VersionMove, from: String },
    /// The environment runs the version of the environments before it already.
    UpToDate { version: String },
    /// No environment before the target has the package installed: nothing to promote.
    NotInstalledBefore,
}

/// Why kpin does not promote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// kpin.yaml has no `promotion:` order of environments.
    #[error("{manifest} declares no promotion order")]
    NoOrder { manifest: String },
    /// The target environment is not in the `promotion:` order.
    #[error("environment {env} is not in the promotion order ({order})")]
    NotInOrder { env: String, order: String },
    /// The target environment is the first of the order: there is nothing to promote from.
    #[error("{env} is the first environment of the promotion order: nothing comes before it")]
    First { env: String },
    /// The environment right before the target runs the target's version already, so the
    /// new version would come from an earlier one, skipping it; without `--allow-skip`.
    #[error(
        "promoting {package} to {to} would skip {skipped}: {previous} runs {current} like {to}, {earlier} runs {version}"
    )]
    Skip {
        package: String,
        to: String,
        previous: String,
        current: String,
        earlier: String,
        version: String,
        /// The environments between `earlier` and `to`, comma-separated.
        skipped: String,
    },
    /// The target is to be installed, but the environment right before it does not have the
    /// package; an earlier one does. Without `--allow-skip`.
    #[error(
        "{package} is not installed in {previous}, the environment before {to} (only in {earlier} and before)"
    )]
    NotInstalledBefore {
        package: String,
        to: String,
        previous: String,
        earlier: String,
    },
    /// The version promoted is older (by semver) than the one the target runs.
    #[error(
        "promoting {package} to {to} would downgrade it from {current} to {version}, the version {from} runs"
    )]
    Downgrade {
        package: String,
        to: String,
        from: String,
        current: String,
        version: String,
    },
}

impl Refusal {
    /// The way forward, for the `hint:` line.
    pub fn hint(&self) -> String {
        match self {
            Refusal::NoOrder { .. } => {
                "add the order versions travel in to kpin.yaml, e.g. `promotion: [dev, qa, prod]`"
                    .to_owned()
            }
            Refusal::NotInOrder { env, .. } => format!(
                "add {env} to `promotion:` in kpin.yaml, or change its version with `kpin upgrade PACKAGE --env {env}`"
            ),
            Refusal::First { env } => format!(
                "a new version enters through {env} with `kpin upgrade PACKAGE --env {env}`"
            ),
            Refusal::Skip {
                package,
                previous,
                earlier,
                to,
                ..
            } => format!(
                "promote to {previous} first (`kpin promote {package} --to {previous}`), or pass --allow-skip to give {to} the version {earlier} runs"
            ),
            Refusal::NotInstalledBefore {
                package,
                to,
                previous,
                earlier,
            } => format!(
                "promote to {previous} first (`kpin promote {package} --to {previous}`), or pass --allow-skip to install it in {to} with the version {earlier} runs"
            ),
            Refusal::Downgrade {
                package,
                to,
                version,
                ..
            } => format!(
                "to roll {to} back on purpose: `kpin upgrade {package} --env {to} --to {version}`"
            ),
        }
    }

    /// Refusals that concern one package, which `--all` skips with a warning; the others are
    /// about the promotion order and stop the command.
    pub fn is_per_package(&self) -> bool {
        matches!(
            self,
            Refusal::Skip { .. } | Refusal::NotInstalledBefore { .. } | Refusal::Downgrade { .. }
        )
    }
}

/// Where `to` sits in the promotion order: the environments before it, nearest last.
fn before<'a>(manifest: &'a Manifest, to: &str) -> Result<&'a [String], Box<Refusal>> {
    if manifest.promotion.is_empty() {
        return Err(Box::new(Refusal::NoOrder {
            manifest: manifest.path.display().to_string(),
        }));
    }
    match manifest.promotion.iter().position(|e| e == to) {
        None => Err(Box::new(Refusal::NotInOrder {
            env: to.to_owned(),
            order: manifest.promotion.join(", "),
        })),
        Some(0) => Err(Box::new(Refusal::First { env: to.to_owned() })),
        Some(i) => Ok(&manifest.promotion[..i]),
    }
}

/// Decide the promotion of `package` to environment `to` (see the module documentation).
pub fn decide(
    manifest: &Manifest,
    package: &Package,
    to: &str,
    allow_skip: bool,
) -> Result<Decision, Box<Refusal>> {
    let order = before(manifest, to)?;
    // Environments the package is not installed in have no version to pass on.
    let earlier: Vec<&String> = order
        .iter()
        .filter(|e| package.installed_in(Some(e)))
        .collect();
    let version_of = |env: &str| package.version_in(Some(env));
    let Some(&previous) = earlier.last() else {
        return Ok(Decision::NotInstalledBefore);
    };
    if !package.installed_in(Some(to)) {
        // Installed with the version the nearest environment before it runs; that must be
        // the one right before it, unless skipping is asked for.
        let right_before = &order[order.len() - 1];
        if right_before != previous && !allow_skip {
            return Err(Box::new(Refusal::NotInstalledBefore {
                package: package.name.clone(),
                to: to.to_owned(),
                previous: right_before.clone(),
                earlier: previous.clone(),
            }));
        }
        let version = version_of(previous);
        return Ok(Decision::Promote {
            target: VersionMove {
                package: package.name.clone(),
                env: Some(to.to_owned()),
                version: version.raw.clone(),
                note: Some(format!(
                    "installed in {to}, promoted from {previous}, which runs {version}"
                )),
            },
            from: previous.clone(),
        });
    }
    let current = version_of(to);
    let from = if version_of(previous) == current {
        let Some(source) = earlier.iter().rev().find(|e| version_of(e) != current) else {
            return Ok(Decision::UpToDate {
                version: current.raw.clone(),
            });
        };
        if !allow_skip {
            let at = order.iter().position(|e| e == *source).unwrap_or(0);
            return Err(Box::new(Refusal::Skip {
                package: package.name.clone(),
                to: to.to_owned(),
                previous: previous.clone(),
                current: current.raw.clone(),
                earlier: (*source).clone(),
                version: version_of(source).raw.clone(),
                skipped: order[at + 1..].join(", "),
            }));
        }
        source
    } else {
        previous
    };
    let version = version_of(from);
    if let (Some(new), Some(old)) = (&version.semver, &current.semver)
        && new < old
    {
        return Err(Box::new(Refusal::Downgrade {
            package: package.name.clone(),
            to: to.to_owned(),
            from: from.clone(),
            current: current.raw.clone(),
            version: version.raw.clone(),
        }));
    }
    Ok(Decision::Promote {
        target: VersionMove {
            package: package.name.clone(),
            env: Some(to.to_owned()),
            version: version.raw.clone(),
            note: Some(format!("promoted from {from}, which runs {version}")),
        },
        from: from.clone(),
    })
}

/// `decide` as an error a command can return: the refusal with its hint.
pub fn refusal_error(refusal: Refusal) -> anyhow::Error {
    let hint = refusal.hint();
    anyhow::Error::new(refusal).hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// dev, qa and prod in order; `a` has `versions` per environment (package version 1.0.0).
    fn manifest(envs: &str) -> Manifest {
        let text = format!(
            "environments: {{dev: {{}}, qa: {{}}, prod: {{}}, sandbox: {{}}}}\npromotion: [dev, qa, prod]\npackages:\n  a:\n    version: 1.0.0\n    url: https://x/{{version}}/a.yaml\n    environments: {envs}\n"
        );
        Manifest::parse(&text, Path::new("/r/kpin.yaml")).unwrap()
    }

    fn decide_to(envs: &str, to: &str, allow_skip: bool) -> Result<Decision, Box<Refusal>> {
        let m = manifest(envs);
        decide(&m, &m.packages["a"], to, allow_skip)
    }

    fn promoted(d: Result<Decision, Box<Refusal>>) -> (String, String) {
        match d {
            Ok(Decision::Promote { target, from }) => (from, target.version),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_environment_before_gives_its_version() {
        let envs = "{dev: {version: 1.2.0}, qa: {version: 1.1.0}}";
        assert_eq!(
            promoted(decide_to(envs, "qa", false)),
            ("dev".into(), "1.2.0".into())
        );
        // prod gets what qa has seen, not dev's newer version.
        assert_eq!(
            promoted(decide_to(envs, "prod", false)),
            ("qa".into(), "1.1.0".into())
        );
    }

    #[test]
    fn an_environment_without_the_package_gets_it_from_the_nearest_that_has_it() {
        let envs = "{qa: {installed: false}, prod: {installed: false}}";
        assert_eq!(
            promoted(decide_to(envs, "qa", false)),
            ("dev".into(), "1.0.0".into())
        );
        let refusal = decide_to(envs, "prod", false).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "a is not installed in qa, the environment before prod (only in dev and before)"
        );
        assert!(
            refusal.hint().contains("kpin promote a --to qa"),
            "{}",
            refusal.hint()
        );
        assert_eq!(
            promoted(decide_to(envs, "prod", true)),
            ("dev".into(), "1.0.0".into())
        );
        // Versions pass by the environments without it; none before: nothing to promote.
        let gap = "{dev: {version: 1.2.0}, qa: {installed: false}, prod: {version: 1.1.0}}";
        assert!(matches!(
            decide_to(gap, "prod", false),
            Ok(Decision::Promote { ref from, .. }) if from == "dev"
        ));
        let none = "{dev: {installed: false}, qa: {installed: false}}";
        assert_eq!(
            decide_to(none, "qa", false),
            Ok(Decision::NotInstalledBefore)
        );
    }

    #[test]
    fn nothing_to_promote_when_the_order_agrees() {
        assert_eq!(
            decide_to("{}", "prod", false),
            Ok(Decision::UpToDate {
                version: "1.0.0".into()
            })
        );
    }

    #[test]
    fn skipping_an_environment_is_refused_unless_asked() {
        let envs = "{dev: {version: 1.2.0}}";
        let refusal = decide_to(envs, "prod", false).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "promoting a to prod would skip qa: qa runs 1.0.0 like prod, dev runs 1.2.0"
        );
        assert!(
            refusal.hint().contains("kpin promote a --to qa"),
            "{}",
            refusal.hint()
        );
        assert!(refusal.is_per_package());
        assert_eq!(
            promoted(decide_to(envs, "prod", true)),
            ("dev".into(), "1.2.0".into())
        );
    }

    #[test]
    fn downgrades_and_order_mistakes_are_refused() {
        let refusal = decide_to("{prod: {version: 2.0.0}}", "prod", false).unwrap_err();
        assert!(matches!(*refusal, Refusal::Downgrade { .. }), "{refusal}");
        assert!(
            refusal
                .hint()
                .contains("kpin upgrade a --env prod --to 1.0.0")
        );
        let refusal = decide_to("{}", "dev", false).unwrap_err();
        assert!(matches!(*refusal, Refusal::First { .. }));
        let refusal = decide_to("{}", "sandbox", false).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "environment sandbox is not in the promotion order (dev, qa, prod)"
        );
        assert!(!refusal.is_per_package());
        let m = Manifest::parse(
            "environments: {prod: {}}\npackages:\n  a:\n    version: 1.0.0\n    url: https://x/{version}/a.yaml\n",
            Path::new("/r/kpin.yaml"),
        )
        .unwrap();
        let refusal = decide(&m, &m.packages["a"], "prod", false).unwrap_err();
        assert!(matches!(*refusal, Refusal::NoOrder { .. }));
        assert!(refusal.hint().contains("promotion: [dev, qa, prod]"));
    }
}
