//! Seeded federations of two (or many) domains for the conformance scenarios. Being built.
