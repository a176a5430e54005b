"""The record store: byte backends (S3, local folder), records and state, run locks, opening one."""
