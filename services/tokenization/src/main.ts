import { runService } from '../../../platform/service';
import { startTokenization } from './app';
import { readConfig, SERVICE } from './config';

runService(SERVICE, (log) => startTokenization(readConfig(), log));
