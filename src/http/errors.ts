import { Type } from '@sinclair/typebox';

/** Every error answer: `{ error: { code, message, reasons? } }`. */
export const ERROR_SCHEMA = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    reasons: Type.Optional(Type.Array(Type.Object({
      index: Type.Integer(),
      reason: Type.String(),
      message: Type.String(),
    }))),
  }),
});
