import type { Method, ParsedParams, Results } from '../contract/index.ts';
import type { Engine } from '../../engine.ts';

export type Handler<M extends Method> = (params: ParsedParams<M>, engine: Engine) => Promise<Results[M]> | Results[M];
export type Handlers<K extends Method = Method> = { [M in K]: Handler<M> };
