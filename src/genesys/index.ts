export { decodeUuiHeader, encodeUuiHex, MAX_UUI_HEADER_LENGTH, type DecodedUui } from './uui.js';
export { extractContext, parseUuiFields, UUI_HEADERS, type CallContext } from './context.js';
export {
  buildReferTo,
  encodeResultUui,
  parseResultUui,
  selectHandBackTarget,
  toSipTarget,
  RESULT_KEYS,
  RESULT_KEY_PRIORITY,
  type ResultKey,
} from './result.js';
