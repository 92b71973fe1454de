// skiff's own version, from package.json, for Version and `--version`.
import * as fs from 'fs';
import * as path from 'path';

export const SKIFF_VERSION: string = (JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as { version: string }).version;
