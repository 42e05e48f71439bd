// ESLint for the pages' modules (make lint): the recommended rules, browser globals.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["web/static/js/**/*.js"],
    languageOptions: {
      ecmaVersion: "latest",
      sourceType: "module",
      globals: { ...globals.browser, maplibregl: "readonly", echarts: "readonly" },
    },
    rules: {
      "no-unused-vars": ["error", { args: "none" }],
    },
  },
];
