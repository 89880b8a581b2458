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
    /// What is checked, in a few words.
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
        Check {
            name: name.into(),
            requirements: requirements.to_vec(),
            outcome,
        }
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
