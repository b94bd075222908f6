export { decodeUuiHeader, encodeUuiHex, MAX_UUI_HEADER_LENGTH, type DecodedUui } from './uui.js';
export { extractContext, parseUuiFields, showableValue, UUI_HEADERS, type CallContext, type RejectedField } from './context.js';
export { resolveContext, type ResolvedContext } from './resolve-context.js';
export { resolveReturnTarget, escapeSipUser, type AllowedReturnTarget, type ReturnTargetRules } from './return-target.js';
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
