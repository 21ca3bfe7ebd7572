// ESLint for the web page's scripts (imgbatch/web/*.js), run by `make test`.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", ".venv/", "data/"] },
  js.configs.recommended,
  {
    files: ["imgbatch/web/**/*.js"],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: "module",
      globals: globals.browser,
    },
    rules: {
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-shadow": "error",
      "no-implicit-globals": "error",
      "no-unused-vars": ["error", { args: "all", argsIgnorePattern: "^_" }],
      "no-use-before-define": ["error", { functions: false, classes: false, variables: false }],
      "no-param-reassign": "error",
      "no-console": "error",
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-restricted-properties": [
        "error",
        { property: "innerHTML", message: "Build elements with dom.js's h(): text, never HTML." },
        { property: "outerHTML", message: "Build elements with dom.js's h(): text, never HTML." },
        {
          property: "insertAdjacentHTML",
          message: "Build elements with dom.js's h(): text, never HTML.",
        },
      ],
      "prefer-template": "error",
      curly: ["error", "multi-line"],
    },
  },
  {
    files: ["eslint.config.mjs"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
];
