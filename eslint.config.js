// Lint: typescript-eslint's recommended rules plus the dependency direction of
// docs/architecture.md, enforced with no-restricted-imports:
//   lib  <-  wire, model  <-  agent, replicator, control, launch, net, aws, console  <-  cli
// A component talks to another only through `wire` or the HTTP API, never by
// importing its internals.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const COMPONENTS = ["agent", "replicator", "control", "launch", "net", "aws", "console", "release"];
const FOUNDATIONS = ["wire", "model"];

/** A regex that matches a relative import reaching into one of `names`. */
function reaching(names) {
  return `^(\\.\\./)+(${names.join("|")})/`;
}

function restrict(files, forbidden, why) {
  return {
    files,
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex: reaching(forbidden), message: why }] }],
    },
  };
}

const componentRules = COMPONENTS.map((c) =>
  restrict(
    [`src/${c}/**/*.ts`],
    [...COMPONENTS.filter((o) => o !== c), "cli"],
    `${c} may import only lib, wire and model; talk to other components through wire or the API.`,
  ),
);

export default tseslint.config(
  { ignores: [".tools/**", "node_modules/**", "**/fixtures/**", "**/cdk.out/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly", Buffer: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  restrict(["src/lib/**/*.ts"], [...COMPONENTS, ...FOUNDATIONS, "cli"], "lib depends on nothing in Ferry."),
  restrict(
    ["src/wire/**/*.ts", "src/model/**/*.ts"],
    [...COMPONENTS, "cli"],
    "wire and model depend only on lib (and each other).",
  ),
  ...componentRules,
);
