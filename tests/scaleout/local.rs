//! Two supervisors in one process, one Redis: two hosts.
