import { runService } from '../../../platform/service';
import { startRisk } from './app';
import { readConfig, SERVICE } from './config';

runService(SERVICE, (log) => startRisk(readConfig(), log));
