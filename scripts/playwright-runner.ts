// playwright-runner.ts: a generic browser step executor driven over stdin/stdout.
//
// It knows nothing about any website: a connector spec (connectors/*.yaml,
// `auth.connect.playwright`) says what to do, the bridge (src/login/) sends it here.
//
// Protocol (one JSON object per line):
//   stdin, first line:  {"launch": {...}, "steps": [...], "inputs": {"name": "value"}}
//   stdout, progress:   {"step": "3", "type": "click"}
//   stdout, a question: {"prompt": {"name": "two_factor_code", "message": "..."}}
//   stdin, the answer:  {"answer": "123456"}
//   stdout, last line:  {"success": true, "cookies": {...}, "extracted": {...}}
//                    or {"success": false, "error": {"kind": "...", "step": "3", "message": "..."}}
//
// launch: executable_path (default /usr/bin/chromium), headless (default true), args
// (extra browser flags), timeout (ms to start the browser), user_data_dir (a profile
// directory the caller owns; else a temporary one removed at the end).
// The end of stdin while a prompt waits fails the login (`prompt_unanswered`); SIGTERM
// closes the browser and exits.
//
// Steps: goto, wait_for, assert_cookies, extract_cookies, extract, click, fill, type,
// if_selector, fail_if, close. A step is either a bare name (`"close"`) or an object
// with one key, the step type. Step numbers are 1-based; nested steps are numbered
// "4.2". Input values, prompt answers and cookie values are secrets: they are only
// ever written in the final success line's `cookies`.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium, type BrowserContext, type Page } from "playwright-core";

const DEFAULT_EXECUTABLE = "/usr/bin/chromium";
const DEFAULT_STEP_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 100;
// Flags for a server without a display, GPU or outbound network besides the site.
const BROWSER_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Job {
  launch: JsonObject;
  steps: Json[];
  inputs: { [name: string]: string };
}

/** A failure that ends the run; `kind` is what the bridge matches on. */
class StepError extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

function emit(line: JsonObject): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

/** Reads stdin line by line; each `next()` waits for the next line (null at end). */
class LineReader {
  private readonly queue: string[] = [];
  private readonly waiting: ((line: string | null) => void)[] = [];
  private closed = false;

  constructor() {
    const lines = createInterface({ input: process.stdin });
    lines.on("line", (line) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(line);
      else this.queue.push(line);
    });
    lines.on("close", () => {
      this.closed = true;
      for (const waiter of this.waiting.splice(0)) waiter(null);
    });
  }

  next(): Promise<string | null> {
    const line = this.queue.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stepType(step: Json): [string, Json] {
  if (typeof step === "string") return [step, null];
  if (isObject(step)) {
    const keys = Object.keys(step);
    if (keys.length === 1) return [keys[0], step[keys[0]]];
  }
  throw new StepError("invalid_step", "a step is a name or an object with exactly one key (the step type)");
}

function stringField(args: Json, field: string, type: string): string {
  if (isObject(args) && typeof args[field] === "string") return args[field] as string;
  throw new StepError("invalid_step", `${type} needs a string \`${field}\``);
}

/** The selector of a step written `click: "sel"` or `click: {selector: "sel"}`. */
function selectorOf(args: Json, type: string): string {
  if (typeof args === "string") return args;
  return stringField(args, "selector", type);
}

function timeoutOf(args: Json, fallback: number): number {
  if (isObject(args) && typeof args.timeout === "number") return args.timeout;
  return fallback;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class Runner {
  readonly cookies: { [name: string]: string } = {};
  readonly extracted: { [name: string]: string } = {};
  closed = false;

  constructor(
    private readonly context: BrowserContext,
    private readonly page: Page,
    private readonly inputs: { [name: string]: string },
    private readonly stdin: LineReader,
  ) {}

  async runSteps(steps: Json[], prefix: string): Promise<void> {
    for (const [index, step] of steps.entries()) {
      const number = prefix + String(index + 1);
      const [type, args] = (() => {
        try {
          return stepType(step);
        } catch (error) {
          throw withStep(error, number);
        }
      })();
      emit({ step: number, type });
      try {
        await this.runStep(type, args, number);
      } catch (error) {
        throw withStep(error, number);
      }
    }
  }

  private async runStep(type: string, args: Json, number: string): Promise<void> {
    switch (type) {
      case "goto": {
        const url = typeof args === "string" ? args : stringField(args, "url", type);
        try {
          await this.page.goto(url, { timeout: timeoutOf(args, DEFAULT_STEP_TIMEOUT_MS) });
        } catch (error) {
          throw new StepError("navigation", `could not open ${where(url)}: ${firstLine(error)}`);
        }
        return;
      }
      case "wait_for": {
        const timeout = timeoutOf(args, DEFAULT_STEP_TIMEOUT_MS);
        if ((await this.firstMatch(conditionsOf(args, type), timeout)) === null) {
          throw new StepError(
            "timeout",
            `none of the expected pages appeared within ${timeout} ms (at ${where(this.page.url())})`,
          );
        }
        return;
      }
      case "fail_if": {
        const kind = stringField(args, "kind", type);
        const timeout = timeoutOf(args, 0);
        const match = await this.firstMatch(conditionsOf(args, type), timeout);
        if (match === null) return;
        const message =
          isObject(args) && typeof args.message === "string" ? args.message : await this.describe(match);
        throw new StepError(kind, message);
      }
      case "if_selector": {
        const selector = stringField(args, "selector", type);
        const nested = isObject(args) && Array.isArray(args.steps) ? args.steps : null;
        if (nested === null) throw new StepError("invalid_step", "if_selector needs a list `steps`");
        const found = await this.firstMatch([{ selector }], timeoutOf(args, DEFAULT_STEP_TIMEOUT_MS));
        if (found !== null) await this.runSteps(nested, number + ".");
        return;
      }
      case "assert_cookies": {
        const names = Array.isArray(args) ? args : isObject(args) && Array.isArray(args.names) ? args.names : null;
        if (names === null) throw new StepError("invalid_step", "assert_cookies needs a list of cookie names");
        const present = await this.cookieMap();
        const missing = names.filter((name) => typeof name !== "string" || !(name in present));
        if (missing.length > 0) {
          throw new StepError("missing_cookies", `the site did not set: ${missing.join(", ")}`);
        }
        return;
      }
      case "extract_cookies": {
        const wanted = isObject(args) && Array.isArray(args.names) ? args.names : [];
        const optional = isObject(args) && Array.isArray(args.optional) ? args.optional : [];
        const present = await this.cookieMap();
        const missing: string[] = [];
        for (const name of [...wanted, ...optional]) {
          if (typeof name !== "string") continue;
          if (name in present) this.cookies[name] = present[name];
          else if (wanted.includes(name)) missing.push(name);
        }
        if (missing.length > 0) {
          throw new StepError("missing_cookies", `the site did not set: ${missing.join(", ")}`);
        }
        return;
      }
      case "extract": {
        const selector = stringField(args, "selector", type);
        const name = stringField(args, "as", type);
        const attribute = isObject(args) && typeof args.attribute === "string" ? args.attribute : null;
        const element = this.page.locator(selector).first();
        try {
          await element.waitFor({ timeout: timeoutOf(args, DEFAULT_STEP_TIMEOUT_MS), state: "attached" });
        } catch {
          throw new StepError("selector_not_found", `nothing matches ${selector} (at ${where(this.page.url())})`);
        }
        const value = attribute === null ? await element.textContent() : await element.getAttribute(attribute);
        if (value === null) {
          throw new StepError("selector_not_found", `${selector} has no ${attribute ?? "text"}`);
        }
        this.extracted[name] = value.trim();
        return;
      }
      case "click": {
        const selector = selectorOf(args, type);
        try {
          await this.page.click(selector, { timeout: timeoutOf(args, DEFAULT_STEP_TIMEOUT_MS) });
        } catch {
          throw new StepError("selector_not_found", `could not click ${selector} (at ${where(this.page.url())})`);
        }
        return;
      }
      case "fill":
      case "type": {
        const selector = stringField(args, "selector", type);
        const value = await this.valueOf(isObject(args) ? args.value : undefined, type);
        try {
          await this.page.fill(selector, value, { timeout: timeoutOf(args, DEFAULT_STEP_TIMEOUT_MS) });
        } catch {
          // The value is never part of the message: it may be a password.
          throw new StepError("selector_not_found", `could not fill ${selector} (at ${where(this.page.url())})`);
        }
        return;
      }
      case "close":
        await this.context.close();
        this.closed = true;
        return;
      default:
        throw new StepError("invalid_step", `unknown step type \`${type}\``);
    }
  }

  /** A literal, `{input: name}` from the job's inputs, or `{prompt: name, message}` asked on stdout. */
  private async valueOf(value: Json | undefined, type: string): Promise<string> {
    if (typeof value === "string") return value;
    if (isObject(value) && typeof value.input === "string") {
      const input = this.inputs[value.input];
      if (typeof input !== "string") throw new StepError("missing_input", `no input named \`${value.input}\``);
      return input;
    }
    if (isObject(value) && typeof value.prompt === "string") {
      const message = typeof value.message === "string" ? value.message : value.prompt;
      emit({ prompt: { name: value.prompt, message } });
      const line = await this.stdin.next();
      if (line === null) throw new StepError("prompt_unanswered", `no answer to \`${value.prompt}\``);
      let answer: Json;
      try {
        answer = JSON.parse(line) as Json;
      } catch {
        throw new StepError("invalid_answer", `the answer to \`${value.prompt}\` is not JSON`);
      }
      if (!isObject(answer) || typeof answer.answer !== "string") {
        throw new StepError("invalid_answer", `the answer to \`${value.prompt}\` is not {"answer": "..."}`);
      }
      return answer.answer;
    }
    throw new StepError("invalid_step", `${type} needs a \`value\`: a string, {input: name} or {prompt: name}`);
  }

  private async cookieMap(): Promise<{ [name: string]: string }> {
    const map: { [name: string]: string } = {};
    for (const cookie of await this.context.cookies()) {
      if (!(cookie.name in map)) map[cookie.name] = cookie.value;
    }
    return map;
  }

  /** Polls the conditions until one holds or `timeout` passes (0: look once). */
  private async firstMatch(conditions: Condition[], timeout: number): Promise<Condition | null> {
    const deadline = Date.now() + timeout;
    for (;;) {
      for (const condition of conditions) {
        if (await this.holds(condition)) return condition;
      }
      if (Date.now() >= deadline) return null;
      await sleep(POLL_INTERVAL_MS);
    }
  }

  private async holds(condition: Condition): Promise<boolean> {
    try {
      if (condition.url_matches !== undefined) return new RegExp(condition.url_matches).test(this.page.url());
      if (condition.selector !== undefined) return (await this.page.locator(condition.selector).count()) > 0;
      if (condition.cookie !== undefined) return condition.cookie in (await this.cookieMap());
    } catch {
      // The page is navigating; the next poll looks again.
    }
    return false;
  }

  /** What a matched `fail_if` condition shows: the element's text, or the condition. */
  private async describe(condition: Condition): Promise<string> {
    if (condition.selector !== undefined) {
      try {
        const text = await this.page.locator(condition.selector).first().textContent({ timeout: 1000 });
        if (text !== null && text.trim() !== "") return text.trim();
      } catch {
        // Fall through to naming the selector.
      }
      return `the page shows ${condition.selector}`;
    }
    if (condition.url_matches !== undefined) return `the browser reached ${where(this.page.url())}`;
    return `the site set the cookie ${condition.cookie}`;
  }
}

interface Condition {
  url_matches?: string;
  selector?: string;
  cookie?: string;
}

/** `{any: [conditions]}` or one condition written inline. */
function conditionsOf(args: Json, type: string): Condition[] {
  const list = isObject(args) && Array.isArray(args.any) ? args.any : [args];
  const conditions: Condition[] = [];
  for (const item of list) {
    if (!isObject(item)) throw new StepError("invalid_step", `${type} conditions are objects`);
    for (const key of ["url_matches", "selector", "cookie"] as const) {
      if (typeof item[key] === "string") conditions.push({ [key]: item[key] as string });
    }
  }
  if (conditions.length === 0) {
    throw new StepError("invalid_step", `${type} needs url_matches, selector or cookie (or \`any\` of them)`);
  }
  for (const condition of conditions) {
    if (condition.url_matches !== undefined) {
      try {
        new RegExp(condition.url_matches);
      } catch {
        throw new StepError("invalid_step", `url_matches \`${condition.url_matches}\` is not a regular expression`);
      }
    }
  }
  return conditions;
}

/** The error with the number of the step it happened in (a nested step's number stays). */
function withStep(error: unknown, step: string): StepError & { step: string } {
  const failure = error instanceof StepError ? error : new StepError("browser", firstLine(error));
  const known = (failure as { step?: string }).step;
  return Object.assign(failure, { step: known ?? step });
}

/** A URL for messages: without query and fragment, which may carry login tokens. */
function where(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.origin + parsed.pathname;
  } catch {
    return "an unparsable URL";
  }
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0];
}

function parseJob(line: string | null): Job {
  if (line === null) throw new StepError("invalid_job", "no job on stdin");
  let job: Json;
  try {
    job = JSON.parse(line) as Json;
  } catch {
    throw new StepError("invalid_job", "the first stdin line is not JSON");
  }
  if (!isObject(job) || !Array.isArray(job.steps)) {
    throw new StepError("invalid_job", 'the job is {"launch": {...}, "steps": [...], "inputs": {...}}');
  }
  const inputs: { [name: string]: string } = {};
  if (isObject(job.inputs)) {
    for (const [name, value] of Object.entries(job.inputs)) {
      if (typeof value === "string") inputs[name] = value;
    }
  }
  return { launch: isObject(job.launch) ? job.launch : {}, steps: job.steps, inputs };
}

// The browser of the running login, closed when the bridge gives up (SIGTERM).
let activeContext: BrowserContext | null = null;

process.on("SIGTERM", () => {
  setTimeout(() => process.exit(143), 5000).unref();
  void (activeContext?.close() ?? Promise.resolve()).finally(() => process.exit(143));
});

async function main(): Promise<number> {
  const stdin = new LineReader();
  let userDataDir: string | null = null;
  let removeDir = false;
  let context: BrowserContext | null = null;
  try {
    const job = parseJob(await stdin.next());
    const launch = job.launch;
    const executablePath =
      typeof launch.executable_path === "string" ? launch.executable_path : DEFAULT_EXECUTABLE;
    const extraArgs = Array.isArray(launch.args) ? launch.args.filter((arg) => typeof arg === "string") : [];
    // A caller that may kill the runner gives a directory it removes itself.
    const givenDir = typeof launch.user_data_dir === "string" ? launch.user_data_dir : null;
    userDataDir = givenDir ?? (await mkdtemp(join(tmpdir(), "playwright-runner-")));
    removeDir = givenDir === null;
    try {
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath,
        // A runner on a server has no display: `headless: false` is honoured only when asked for.
        headless: launch.headless !== false,
        args: (launch.headless === false ? BROWSER_ARGS.slice(1) : BROWSER_ARGS).concat(extraArgs as string[]),
        timeout: typeof launch.timeout === "number" ? launch.timeout : DEFAULT_STEP_TIMEOUT_MS,
        handleSIGTERM: false,
      });
      activeContext = context;
    } catch (error) {
      throw new StepError("browser_launch", `could not start ${executablePath}: ${firstLine(error)}`);
    }
    const page = context.pages()[0] ?? (await context.newPage());
    const runner = new Runner(context, page, job.inputs, stdin);
    await runner.runSteps(job.steps, "");
    if (runner.closed) context = null;
    emit({ success: true, cookies: runner.cookies, extracted: runner.extracted });
    return 0;
  } catch (error) {
    const failure = error instanceof StepError ? error : new StepError("runner", firstLine(error));
    const step = (failure as { step?: string }).step;
    emit({
      success: false,
      error: { kind: failure.kind, ...(step === undefined ? {} : { step }), message: failure.message },
    });
    return 1;
  } finally {
    if (context !== null) await context.close().catch(() => undefined);
    if (userDataDir !== null && removeDir) await rm(userDataDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

process.exitCode = await main();
// stdin stays open while the bridge holds it; do not wait for it.
process.exit();
