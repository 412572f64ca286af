/**
 * Playwright configuration of the jupyter-mlws browser tests (galata defaults, adapted to a
 * machine without a downloaded browser: Debian's Chromium at /usr/bin/chromium).
 *
 * The server (webServer) is `jupyter lab --config jupyter_server_test_config.py` on a free port
 * ($MLWS_UI_PORT, picked here once and inherited by the workers), root allowed, serving the
 * workspace of $MLWS_WORKSPACE (seeded by the config).
 *
 * Projects: `ui` (every spec but the benchmark) and `perf` (tests/perf.spec.ts, run by
 * benchmarks/bench_sidebar.py against a workspace with 10,000 versions).
 */
const { execSync } = require('child_process');
const os = require('os');
const path = require('path');
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

if (!process.env.MLWS_UI_PORT) {
  process.env.MLWS_UI_PORT = execSync(
    `python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"`
  )
    .toString()
    .trim();
}
const port = process.env.MLWS_UI_PORT;
// The server's log goes to a file (printed by scripts/browser-tests.sh when a test fails).
if (!process.env.MLWS_SERVER_LOG) {
  process.env.MLWS_SERVER_LOG = path.join(os.tmpdir(), `mlws-ui-server-${port}.log`);
}
const chromium = process.env.MLWS_CHROMIUM || '/usr/bin/chromium';

module.exports = {
  ...baseConfig,
  testDir: './tests',
  outputDir: './test-results',
  timeout: 120 * 1000,
  expect: { timeout: 15 * 1000 },
  retries: 0,
  workers: 1,
  forbidOnly: true,
  reporter: [
    ['list'],
    ['html', { open: 'never', outputFolder: 'playwright-report' }]
  ],
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    video: 'off',
    actionTimeout: 15 * 1000,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: chromium,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync'
      ]
    }
  },
  projects: [
    { name: 'ui', testIgnore: /perf\.spec\.ts/ },
    { name: 'perf', testMatch: /perf\.spec\.ts/ }
  ],
  webServer: {
    command: `exec jupyter lab --config jupyter_server_test_config.py >"${process.env.MLWS_SERVER_LOG}" 2>&1`,
    cwd: path.resolve(__dirname),
    url: `http://127.0.0.1:${port}/lab`,
    timeout: 120 * 1000,
    reuseExistingServer: false,
    stdout: 'ignore',
    stderr: 'pipe'
  }
};
