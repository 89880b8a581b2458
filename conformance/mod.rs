//! The conformance suite (issue 5): workloads, scenarios and the requirement-by-requirement
//! report. Being built; see the README's status table.
pub mod workload;
