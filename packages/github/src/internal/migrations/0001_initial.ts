/**
 * Migration 1: buildomat's GitHub schema (github/database `schema.sql` at v14: `delivery`,
 * `repository`, `install`, `user`, `check_suite`, `check_run`, with the same column names and
 * value encodings), plus what this implementation adds: the delivery retry columns, the
 * per-repository core users and the one-time job-token grants.
 *
 * @internal
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // `seq` is ours: max(seq)+1 from 0, assigned in the inserting transaction. `payload` is the
  // raw body as received, so that its signature can be checked again. `ack` NULL means not yet
  // processed; otherwise the handler version that processed it. `attempts`, `last_error` and
  // `not_before` let a failing delivery back off, and `last_error` on an acked delivery says
  // why it was set aside (for example an unparseable payload) instead of retried forever.
  yield* sql`CREATE TABLE delivery (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    headers TEXT NOT NULL,
    payload TEXT NOT NULL,
    recvtime TEXT NOT NULL,
    ack INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    not_before TEXT
  )`
  yield* sql`CREATE INDEX delivery_ack ON delivery (ack)`
  yield* sql`CREATE TABLE repository (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    visibility TEXT
  )`
  yield* sql`CREATE INDEX repository_owner_name ON repository (owner, name)`
  yield* sql`CREATE TABLE user (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL,
    usertype TEXT NOT NULL,
    name TEXT,
    email TEXT
  )`
  yield* sql`CREATE TABLE install (
    id INTEGER PRIMARY KEY,
    owner INTEGER NOT NULL
  )`
  yield* sql`CREATE TABLE check_suite (
    id TEXT PRIMARY KEY,
    repo INTEGER NOT NULL,
    install INTEGER NOT NULL,
    github_id INTEGER NOT NULL,
    head_sha TEXT NOT NULL,
    head_branch TEXT,
    state TEXT NOT NULL,
    plan TEXT,
    plan_sha TEXT,
    url_key TEXT NOT NULL,
    pr_by INTEGER,
    requested_by INTEGER,
    approved_by INTEGER,
    UNIQUE (repo, github_id)
  )`
  yield* sql`CREATE TABLE check_run (
    id TEXT PRIMARY KEY,
    check_suite TEXT NOT NULL REFERENCES check_suite (id) ON UPDATE RESTRICT ON DELETE RESTRICT,
    name TEXT NOT NULL,
    variety TEXT NOT NULL,
    content TEXT,
    config TEXT,
    private TEXT,
    active INTEGER NOT NULL,
    flushed INTEGER NOT NULL,
    github_id INTEGER,
    dependencies TEXT
  )`
  yield* sql`CREATE INDEX check_run_suite ON check_run (check_suite)`
  yield* sql`CREATE TABLE core_user (
    repo INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL,
    time_create TEXT NOT NULL
  )`
  yield* sql`CREATE TABLE job_token (
    nonce_hash TEXT PRIMARY KEY,
    check_run TEXT NOT NULL REFERENCES check_run (id),
    time_create TEXT NOT NULL,
    time_used TEXT
  )`
})
