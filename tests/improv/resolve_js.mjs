// Test-only: the SDK's dist/ imports "./util/hex-formatter" without the ".js" a bundler
// adds and node's ES module loader needs; this hook adds it for relative imports.
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    if (error.code === "ERR_MODULE_NOT_FOUND" && specifier.startsWith(".") && !specifier.endsWith(".js")) {
      return next(specifier + ".js", context);
    }
    throw error;
  }
}
