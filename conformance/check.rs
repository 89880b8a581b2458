//! One check of a scenario: what was checked, which XEP requirements it exercises, and the
//! outcome.

use std::fmt;

/// The outcome of a [`Check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The implementation did what the requirements say.
    Pass,
    /// It did not; the detail says what was seen instead.
    Fail(String),
    /// The run never reached what the check looks at (e.g. no batch was sent): the check
    /// neither passes nor fails, and covers no requirement.
    NotExercised(String),
}

/// A named check with the requirement identifiers (`PS-n`) it exercises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// A stable identifier: lower-case words joined by `-`, parts joined by `/`, no figures
    /// of the workload (`cold-restart/truth`, `hostile/…/answer`, `…/audit/batch-size`). Set
    /// with [`Check::with_id`]; a check made without one gets a slug of its name, digits
    /// removed. [`super::scenarios::run`] puts the scenario's name in front.
    pub id: String,
    /// What is checked, in a sentence (may carry the workload's figures).
    pub name: String,
    /// The XEP requirements it exercises.
    pub requirements: Vec<&'static str>,
    /// Pass, fail or not exercised.
    pub outcome: Outcome,
}

impl Check {
    /// A check that passes if `ok`, else fails with `detail` (evaluated only on failure).
    pub fn new(
        name: impl Into<String>,
        requirements: &[&'static str],
        ok: bool,
        detail: impl FnOnce() -> String,
    ) -> Check {
        let outcome = if ok {
            Outcome::Pass
        } else {
            Outcome::Fail(detail())
        };
        Check::with(name, requirements, outcome)
    }

    /// A check with a computed outcome.
    pub fn with(name: impl Into<String>, requirements: &[&'static str], outcome: Outcome) -> Check {
        let name = name.into();
        Check {
            id: slug(&name),
            name,
            requirements: requirements.to_vec(),
            outcome,
        }
    }

    /// This check with the stable identifier `id` (see [`Check::id`]).
    pub fn with_id(mut self, id: impl Into<String>) -> Check {
        self.id = id.into();
        self
    }

    /// A check that passes if `differences` is empty; fails with the count and the first few.
    pub fn empty(
        name: impl Into<String>,
        requirements: &[&'static str],
        differences: &[String],
    ) -> Check {
        Check::new(name, requirements, differences.is_empty(), || {
            let first: Vec<&str> = differences.iter().take(3).map(String::as_str).collect();
            format!(
                "{} differences, first: {}",
                differences.len(),
                first.join("; ")
            )
        })
    }

    /// True unless the check failed.
    pub fn ok(&self) -> bool {
        !matches!(self.outcome, Outcome::Fail(_))
    }

    /// True if it failed.
    pub fn failed(&self) -> bool {
        !self.ok()
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reqs = self.requirements.join(", ");
        match &self.outcome {
            Outcome::Pass => write!(f, "pass  {} [{reqs}]", self.name),
            Outcome::Fail(d) => write!(f, "FAIL  {} [{reqs}]: {d}", self.name),
            Outcome::NotExercised(d) => write!(f, "n/a   {} [{reqs}]: {d}", self.name),
        }
    }
}

/// `text` as an identifier: lower-case ASCII letters in words joined by `-`; digits and
/// everything else dropped (so that the figures of a workload never enter an identifier).
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for word in text.split(|c: char| !c.is_ascii_alphabetic()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_slugs_without_figures_unless_given() {
        let c = Check::new(
            "a resync cut after any of its 42 messages",
            &["PS-16"],
            true,
            String::new,
        );
        assert_eq!(c.id, "a-resync-cut-after-any-of-its-messages");
        assert_eq!(c.with_id("cut-anywhere").id, "cut-anywhere");
        assert_eq!(slug("hostile: PS-9 x"), "hostile-ps-x");
    }
}
