/**
 * npm run example:tsbank -- [flags]: one TSBank instance (src/cli.ts lists
 * its flags), or with --chaos the chaos run (chaos/cli.ts).
 */
if (process.argv.includes('--chaos')) await import('./chaos/cli.js');
else await import('./src/cli.js');
