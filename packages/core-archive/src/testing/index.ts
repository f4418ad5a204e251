export { greet as testGreet } from '../hello.ts';
