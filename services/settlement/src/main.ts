import { runService } from '../../../platform/service';
import { startSettlement } from './app';
import { readConfig, SERVICE } from './config';

runService(SERVICE, (log) => startSettlement(readConfig(), log));
