// The actions the in-host suite can ask the driver for, one JSON object per
// request to REMOCAL_VSCODE_DRIVER (see run.mjs). Each is bounded: a
// selector that never shows fails the request, not the run.
const maxWaitMs = 30000;

export async function handleUI(page, action, { screenshot, log }) {
  const timeout = Math.min(Number(action.timeoutMs ?? 10000), maxWaitMs);
  switch (action.do) {
    case 'screenshot':
      return { path: await screenshot(action.name ?? 'screenshot') };
    case 'type':
      log(`typing ${JSON.stringify(action.text)}`);
      await page.keyboard.type(String(action.text), { delay: 15 });
      return {};
    case 'press':
      log(`pressing ${action.key}`);
      await page.keyboard.press(String(action.key));
      return {};
    case 'waitFor': {
      // Visible elements matching the selector (and the text, when given).
      const loc = locate(page, action);
      await loc.first().waitFor({ state: 'visible', timeout });
      return { texts: await loc.allInnerTexts() };
    }
    case 'texts':
      return { texts: await locate(page, action).allInnerTexts() };
    case 'click':
      await locate(page, action).first().click({ timeout });
      return {};
    default:
      throw new Error(`unknown action ${JSON.stringify(action.do)}: want screenshot, type, press, waitFor, texts or click`);
  }
}

function locate(page, action) {
  if (typeof action.selector !== 'string' || action.selector === '') {
    throw new Error('the action needs a CSS selector in "selector"');
  }
  const loc = page.locator(action.selector);
  return action.hasText === undefined ? loc : loc.filter({ hasText: String(action.hasText) });
}
