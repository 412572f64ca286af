import './base.css';
import './endpoints.css';
import './sweep.css';
