//! The command backend: runs a user's program per trial (todo).
