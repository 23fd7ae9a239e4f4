//! The upgrade workflow: newer upstream versions (`outdated`), a package moved to one with a
//! reviewable report (`upgrade`), versions carried from one environment to the next
//! (`promote`), and a project compared with a git revision for pull requests (`diff_base`).

pub mod diff_base;
pub mod outdated;
pub mod promote;
pub mod upgrade;
